"""Entry point for LangGraph's own server (`langgraph.json` -> `recommend`).

LangGraph's server cannot pass a `GraphContext` (models, indexes): a run passes its
`GraphSettings` as `context` (a JSON object; omitted fields keep their defaults), and the
nodes build the default parts from the environment (`MMSRAREC_*`, as the CLI does) on first
use. `graph_context` caches one `GraphContext` per distinct settings value; the models are
loaded once (`_parts`). The server brings its own checkpointer, so none is compiled in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from mmsrarec.config import Settings, apply_offline_env, load_settings
from mmsrarec.data import Dataset, load_dataset
from mmsrarec.graph.factory import build_context
from mmsrarec.graph.graph import GraphBuilder
from mmsrarec.models import ModelCache
from mmsrarec.nodes.context import GraphContext, GraphSettings

Node = Callable[..., Any]


@cache
def _parts() -> tuple[Settings, Dataset, ModelCache]:
    settings = load_settings()
    apply_offline_env(settings)
    return settings, load_dataset(settings.dataset_dir), ModelCache(settings)


@cache
def graph_context(run: GraphSettings) -> GraphContext:
    """The default parts for `run` (built once per distinct settings value)."""
    settings, dataset, models = _parts()
    return build_context(settings, dataset, models, run)


def with_graph_context(node: Node) -> Node:
    """`node`, given `graph_context(settings)` when the runtime holds run settings or None."""

    def run(state: Any, runtime: Runtime) -> Any:
        if not isinstance(runtime.context, GraphContext):
            given = runtime.context
            settings = given if isinstance(given, GraphSettings) else GraphSettings()
            runtime = runtime.override(context=graph_context(settings))
        return node(state, runtime)

    run.__name__ = node.__name__
    return run


def recommend_graph() -> CompiledStateGraph:
    """The recommendation graph for `langgraph dev` / `langgraph up`; context: `GraphSettings`
    (no model loads until a run)."""
    return GraphBuilder().build(GraphSettings, with_graph_context).compile()
