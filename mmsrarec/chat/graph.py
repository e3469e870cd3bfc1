"""The chat graph and the service that runs it for many conversations.

    understand -> clarify -> END       (a title that means several films: ask which)
    understand -> hard_filter <-> relax -> soft_search -> rank -> final_filter -> reply -> END
                  (SQL)          (one      (Chroma)       (the recommendation graph)
                                 condition)

A conversation is a checkpointer thread: `ChatService.chat(thread_id, message)` resumes it,
so the intent (likes, dislikes, conditions, what was shown) carries over between turns.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import maybe_add_typed_methods
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from mmsrarec.chat.context import ChatContext
from mmsrarec.chat.nodes import after_understand, clarify, reply, understand
from mmsrarec.chat.state import STATE_TYPES, ChatInput, ChatOutput, ChatState
from mmsrarec.chat.tools import after_filter, final_filter, hard_filter, rank, relax, soft_search
from mmsrarec.errors import DataError
from mmsrarec.graph.graph import thread_config, thread_trace
from mmsrarec.prompt_text import encoding_problem

Node = Callable[..., dict[str, Any]]


def build_chat_graph(
    checkpointer: BaseCheckpointSaver | None = None,
    default_context: Callable[[Any], ChatContext] | None = None,
    context_schema: type | None = None,
) -> CompiledStateGraph:
    """The chat graph, compiled.

    Args:
        checkpointer: Remembers conversations (one thread each); None for none.
        default_context: For hosts that cannot pass a `ChatContext` (LangGraph's server,
            see `mmsrarec.chat.serving`): nodes run without one call this with the run's
            context (a `context_schema` value, or None) to get it.
        context_schema: What such hosts pass as `context` (their run settings).
    """
    schema = context_schema if default_context else ChatContext
    graph = StateGraph(
        ChatState, context_schema=schema, input_schema=ChatInput, output_schema=ChatOutput
    )
    for name, node in (
        ("understand", understand),
        ("clarify", clarify),
        ("hard_filter", hard_filter),
        ("relax", relax),
        ("soft_search", soft_search),
        ("rank", rank),
        ("final_filter", final_filter),
        ("reply", reply),
    ):
        graph.add_node(name, _with_default(node, default_context) if default_context else node)
    graph.add_edge(START, "understand")
    graph.add_conditional_edges("understand", after_understand, ["clarify", "hard_filter"])
    graph.add_edge("clarify", END)
    graph.add_conditional_edges(
        "hard_filter",
        _with_default(after_filter, default_context) if default_context else after_filter,
        ["relax", "soft_search"],
    )
    graph.add_edge("relax", "hard_filter")
    graph.add_edge("soft_search", "rank")
    graph.add_edge("rank", "final_filter")
    graph.add_edge("final_filter", "reply")
    graph.add_edge("reply", END)
    if checkpointer is not None:  # load the state's pydantic types back without a warning
        checkpointer = with_state_types(checkpointer)
    return graph.compile(checkpointer=checkpointer)


def with_state_types(checkpointer: BaseCheckpointSaver) -> BaseCheckpointSaver:
    """A shallow copy of `checkpointer` whose serializer loads the state's pydantic types
    (`STATE_TYPES`) and, as LangGraph's strict mode, no other custom type. (LangGraph's own
    `with_allowlist` is a no-op in its default permissive mode, which logs a warning per type.)
    """
    clone = copy.copy(checkpointer)
    clone.serde = maybe_add_typed_methods(JsonPlusSerializer(allowed_msgpack_modules=STATE_TYPES))
    return clone


def _with_default(node: Node, default_context: Callable[[Any], ChatContext]) -> Node:
    """`node`, given `default_context(runtime.context)` whenever that is no `ChatContext`."""

    def run(state: ChatState, runtime: Runtime) -> dict[str, Any]:
        if not isinstance(runtime.context, ChatContext):
            runtime = runtime.override(context=default_context(runtime.context))
        return node(state, runtime)

    run.__name__ = node.__name__
    return run


def split_runs(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A thread's trace cut into turns (each turn starts with an `understand` record)."""
    runs: list[list[dict[str, Any]]] = []
    for record in records:
        if record["node"] == "understand" or not runs:
            runs.append([])
        runs[-1].append(record)
    return runs


class ChatService:
    """Runs the chat graph for many threads on one checkpointer.

    Turns of different threads may run at once (the models only read their weights, the
    checkpointer locks its connection); a caller runs at most one turn per thread at a time,
    as the web app's `TurnPool` does.
    """

    def __init__(self, context: ChatContext, checkpointer: BaseCheckpointSaver) -> None:
        self.context = context
        self.checkpointer = with_state_types(checkpointer)
        self.graph = build_chat_graph(checkpointer)

    @staticmethod
    def new_thread() -> str:
        """A fresh, unguessable thread id (96 random bits in hex: it never starts with `-`,
        which a command line would read as an option)."""
        return secrets.token_hex(12)

    def chat(self, thread_id: str, message: str) -> dict[str, Any]:
        """One turn: the graph's output plus `thread_id` and `turn`.

        Raises:
            DataError: `message` or `thread_id` is not valid text (a lone surrogate).
        """
        for what, text in (("the message", message), ("the thread id", thread_id)):
            if (problem := encoding_problem(text)) is not None:
                raise DataError(f"{what} is not valid text ({problem}): send UTF-8")
        output = self.graph.invoke(
            {"message": message}, thread_config(thread_id), context=self.context
        )
        turn = self.graph.get_state(thread_config(thread_id)).values.get("turn", 0)
        intent = output.get("intent")
        intent = intent.model_dump() if intent is not None else None
        return {**output, "intent": intent, "thread_id": thread_id, "turn": turn}

    def trace(self, thread_id: str) -> list[dict[str, Any]]:
        """The thread's trace records. Raises `DataError` for an unknown thread."""
        return thread_trace(self.checkpointer, thread_id)

    def messages(self, thread_id: str) -> list[dict[str, str]]:
        """The thread's conversation. Raises `DataError` for an unknown thread."""
        state = self.graph.get_state(thread_config(thread_id))
        if not state.values:
            raise DataError(f"no conversation `{thread_id}`")
        return list(state.values.get("messages", []))
