"""Entry point for LangGraph's own serving tools (`langgraph.json` -> `chat_graph`).

LangGraph's server cannot pass our `ChatContext` (models, indexes), so the graph it loads
builds the default one from the environment (`MMSRAREC_*`, as the CLI does) on its first run
and keeps it: this module's `_context` cache is that one explicit, lazily filled holder.
The server brings its own checkpointer, so none is compiled in.
"""

from __future__ import annotations

from functools import cache

from langgraph.graph.state import CompiledStateGraph

from mmsrarec.chat.context import ChatContext
from mmsrarec.chat.graph import build_chat_graph


@cache
def _context() -> ChatContext:
    from mmsrarec.chat.factory import build_chat_service
    from mmsrarec.config import apply_offline_env, load_settings

    settings = load_settings()
    apply_offline_env(settings)
    return build_chat_service(settings, in_memory=True).context


def chat_graph() -> CompiledStateGraph:
    """The chat graph for `langgraph dev` / `langgraph up` (no model loads until a run)."""
    return build_chat_graph(default_context=_context)
