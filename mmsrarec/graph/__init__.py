"""The recommendation graph: load_user -> summarize <-> critique -> retrieve -> recommend.

This package only composes; the parts live below it (`mmsrarec.nodes` with the graph's
state and run context, `mmsrarec.types`, `mmsrarec.trace`):

- `graph.py`: `GraphBuilder` / `build_graph`, checkpointers, threads;
- `factory.py`: `build_context`, the default parts built from `Settings`;
- `session.py`: `GraphSession`, the dataset, models and graph loaded once for many runs;
- `recommender.py`, `trained.py`: the graph behind the evaluator's `Recommender` interface
  (the paper's yes/no variants).
"""

from mmsrarec.graph.factory import build_context
from mmsrarec.graph.graph import (
    GraphBuilder,
    build_graph,
    list_threads,
    open_checkpointer,
    thread_config,
    thread_trace,
)
from mmsrarec.nodes.context import GraphContext, GraphSettings
from mmsrarec.nodes.state import RecommendationInput, RecommendationOutput, RecommendationState
from mmsrarec.trace import verify_trace

__all__ = [
    "GraphBuilder",
    "GraphContext",
    "GraphSettings",
    "RecommendationInput",
    "RecommendationOutput",
    "RecommendationState",
    "build_context",
    "build_graph",
    "list_threads",
    "open_checkpointer",
    "thread_config",
    "thread_trace",
    "verify_trace",
]
