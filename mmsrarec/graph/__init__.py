"""The recommendation graph: load_user -> summarize <-> critique -> retrieve -> recommend.

- `state.py`: the typed state (input, internal, output) and its reducers;
- `context.py`: the parts the nodes call (summarizer, critic, retriever, scorer) and the
  run's `GraphSettings`;
- `graph.py`: `GraphBuilder` / `build_graph`, checkpointers, threads;
- `factory.py`: `build_context`, the default parts built from `Settings`;
- `trace.py`: hash-chained trace records.

Names are imported lazily: the nodes import `graph.context`, and `graph.graph` imports the
nodes, so an eager import here would be circular.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "GraphBuilder": "graph",
    "build_graph": "graph",
    "open_checkpointer": "graph",
    "thread_config": "graph",
    "thread_trace": "graph",
    "list_threads": "graph",
    "GraphContext": "context",
    "GraphSettings": "context",
    "build_context": "factory",
    "RecommendationInput": "state",
    "RecommendationOutput": "state",
    "RecommendationState": "state",
    "verify_trace": "trace",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module `mmsrarec.graph` has no attribute `{name}`")
    return getattr(import_module(f"mmsrarec.graph.{_EXPORTS[name]}"), name)
