"""Entry point for LangGraph's own server (`langgraph.json` -> `chat`).

LangGraph's server cannot pass our `ChatContext` (models, indexes): a run passes
`ServedChatSettings` as `context` (omitted fields keep their defaults), and the graph builds
the default parts from the environment (`MMSRAREC_*`, as the CLI does) on first use. One
context is built per distinct recommendation-graph settings value and kept (`_base`); the chat
settings only swap a field. The server brings its own checkpointer, so none is compiled in.
"""

from __future__ import annotations

import dataclasses
from functools import cache

from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, ConfigDict, Field

from mmsrarec.chat.context import ChatContext, ChatSettings
from mmsrarec.chat.graph import build_chat_graph
from mmsrarec.nodes.context import GraphSettings


class ServedChatSettings(BaseModel):
    """Run settings of the served chat graph."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chat: ChatSettings = Field(default_factory=ChatSettings, description="The chat's settings.")
    graph: GraphSettings = Field(
        default_factory=GraphSettings,
        description="The recommendation graph's settings (its `rank` step).",
    )


@cache
def _base(graph: GraphSettings) -> ChatContext:
    from mmsrarec.chat.factory import build_chat_service
    from mmsrarec.config import apply_offline_env, load_settings

    settings = load_settings()
    apply_offline_env(settings)
    return build_chat_service(settings, graph, in_memory=True).context


def _context(served: ServedChatSettings | None) -> ChatContext:
    served = served if isinstance(served, ServedChatSettings) else ServedChatSettings()
    return dataclasses.replace(_base(served.graph), settings=served.chat)


def chat_graph() -> CompiledStateGraph:
    """The chat graph for `langgraph dev` / `langgraph up` (no model loads until a run)."""
    return build_chat_graph(default_context=_context, context_schema=ServedChatSettings)
