"""The recommendation graph: load_user -> summarize <-> critique -> retrieve -> recommend.

`build_graph()` compiles the default pipeline. `GraphBuilder` lets a developer replace a
node, insert one (a filter, a re-ranker) or drop one, without editing the library:

    graph = (
        GraphBuilder()
        .insert_after("recommend", "drop_seen_genres", my_filter)
        .replace("summarize", my_summarize)
        .compile(checkpointer=open_checkpointer("runs/graph.sqlite"))
    )

Every node is `fn(state, runtime) -> dict` over `RecommendationState`, reading its parts
from `runtime.context` (a `GraphContext`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from mmsrarec.database import sqlite_checkpointer, thread_config, thread_error, thread_trace
from mmsrarec.errors import ConfigError
from mmsrarec.nodes.context import GraphContext
from mmsrarec.nodes.critic import after_critique, critique
from mmsrarec.nodes.history import load_user
from mmsrarec.nodes.recommender import recommend
from mmsrarec.nodes.retrieval import retrieve
from mmsrarec.nodes.state import RecommendationInput, RecommendationOutput, RecommendationState
from mmsrarec.nodes.summarizer import summarize
from mmsrarec.trace import traced

Node = Callable[..., dict[str, Any]]
__all__ = [
    "GraphBuilder",
    "build_graph",
    "list_threads",
    "open_checkpointer",
    "thread_config",
    "thread_error",
    "thread_trace",
]

DEFAULT_STEPS: tuple[tuple[str, Node], ...] = (
    ("load_user", load_user),
    ("summarize", summarize),
    ("critique", critique),
    ("retrieve", retrieve),
    ("recommend", recommend),
)
LOOP_FROM, LOOP_TO = "critique", "summarize"  # the critic sends weak summaries back


class GraphBuilder:
    """An ordered chain of named nodes; the critic's loop back to the summarizer is kept
    while both nodes are in the chain.

    Nodes you add or replace are traced: each run appends a record with the node's name,
    its time and what it changed (unless the node writes its own `trace`). A filter after
    `recommend` may need more than `top_k` items to choose from: `GraphSettings.overfetch`
    makes `recommend` rank that many more, and the last node cuts the list back to `top_k`.
    """

    def __init__(self, steps: tuple[tuple[str, Node], ...] = DEFAULT_STEPS) -> None:
        self.steps: list[tuple[str, Node]] = list(steps)
        self.custom: set[str] = set()  # names of the nodes given to `replace`/`insert_after`

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.steps]

    def _position(self, name: str) -> int:
        if name not in self.names:
            raise ConfigError(f"no node `{name}` in the graph; nodes: {', '.join(self.names)}")
        return self.names.index(name)

    def replace(self, name: str, node: Node) -> GraphBuilder:
        """Run `node` in place of the node called `name`."""
        self.steps[self._position(name)] = (name, node)
        self.custom.add(name)
        return self

    def insert_after(self, after: str, name: str, node: Node) -> GraphBuilder:
        """Add `node` (called `name`) right after the node called `after`."""
        if name in self.names:
            raise ConfigError(f"a node called `{name}` already exists; use `replace`")
        self.steps.insert(self._position(after) + 1, (name, node))
        self.custom.add(name)
        return self

    def remove(self, name: str) -> GraphBuilder:
        """Drop the node called `name` (e.g. `retrieve` for the no-retrieval ablation)."""
        del self.steps[self._position(name)]
        self.custom.discard(name)
        return self

    def build(
        self, context_schema: type = GraphContext, wrap: Callable[[Node], Node] | None = None
    ) -> StateGraph:
        """The uncompiled `StateGraph`.

        Args:
            context_schema: What callers pass as `context`; hosts that cannot pass a
                `GraphContext` (LangGraph's server, `graph.serving`) pass run settings.
            wrap: Applied to every node and router (there: to build the `GraphContext`).
        """
        wrap = wrap or (lambda node: node)
        graph = StateGraph(
            RecommendationState,
            context_schema=context_schema,
            input_schema=RecommendationInput,
            output_schema=RecommendationOutput,
        )
        names = self.names
        last_cuts = "recommend" in names and names[-1] != "recommend"
        for name, node in self.steps:
            if name in self.custom:
                node = custom_node(name, node, cut=last_cuts and name == names[-1])
            graph.add_node(name, wrap(node))
        graph.add_edge(START, names[0])
        for current, following in zip(names, [*names[1:], END], strict=True):
            if current == LOOP_FROM and LOOP_TO in names:
                graph.add_conditional_edges(
                    current, wrap(after_critique), {"summarize": LOOP_TO, "retrieve": following}
                )
            else:
                graph.add_edge(current, following)
        return graph

    def compile(self, checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
        """Compiled graph; pass a checkpointer to keep threads (see `open_checkpointer`)."""
        return self.build().compile(checkpointer=checkpointer)


def custom_node(name: str, node: Node, cut: bool = False) -> Node:
    """`node` with a trace record of its own (unless it writes one), and, with `cut`, its
    `recommendations` cut to the run's `top_k` (the last node after `recommend`)."""
    takes_runtime = len(inspect.signature(node).parameters) > 1

    def run(state: RecommendationState, runtime: Runtime) -> dict[str, Any]:
        with traced(name, custom=True) as record:
            update = dict(node(state, runtime) if takes_runtime else node(state))
            if cut:
                kept = update.get("recommendations", state.get("recommendations", []))
                update["recommendations"] = list(kept)[: state.get("top_k") or None]
            record["outputs"] = {
                key: _shown(key, value) for key, value in update.items() if key != "trace"
            }
        if "trace" not in update:
            update["trace"] = [record["record"]]
        return update

    run.__name__ = getattr(node, "__name__", name)
    return run


def _shown(key: str, value: Any) -> Any:
    """What a custom node's record keeps of one output: item ids of recommendations."""
    if key == "recommendations":
        return [rec["item_id"] for rec in value]
    return value if isinstance(value, str | int | float | bool) else type(value).__name__


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """The default pipeline, compiled."""
    return GraphBuilder().compile(checkpointer)


def open_checkpointer(path: Path | None) -> BaseCheckpointSaver:
    """SQLite checkpointer at `path` (created with its folder), or in memory for `None`.
    (`mmsrarec.database.open_checkpointer` picks SQLite or PostgreSQL from the settings.)"""
    return sqlite_checkpointer(path)


def list_threads(checkpointer: BaseCheckpointSaver) -> list[str]:
    """Thread ids in the store, most recent first."""
    seen: dict[str, None] = {}
    for saved in checkpointer.list(None):
        seen.setdefault(saved.config["configurable"]["thread_id"], None)
    return list(seen)
