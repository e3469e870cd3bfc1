"""Full ranking in two stages: a cheap recommender's top `k` unseen items, re-ranked by an
expensive one that scores only given candidates (an LLM prompt per candidate)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mmsrarec.recommenders.base import Query


def rerank_top(
    catalog: np.ndarray,
    queries: Sequence[Query],
    k: int,
    rescore: Callable[[Query], np.ndarray],
) -> np.ndarray:
    """Catalog scores [len(queries), n_items + 1] where each query's top `k` unseen items of
    `catalog` come first, ordered by `rescore` (scores in [0, 1] land in [1, 2]); every other
    item keeps `catalog`'s order below them, in (-2, -1].

    Args:
        catalog: the first stage's scores [len(queries), n_items + 1].
        rescore: the second stage's scores of a query's `candidates`, in their order.
    """
    catalog = np.asarray(catalog, dtype=np.float64)
    out = np.empty_like(catalog)
    for row, query in enumerate(queries):
        scores = catalog[row].copy()
        scores[0] = -np.inf
        scores[list(query.history)] = -np.inf
        order = np.argsort(-scores, kind="stable")  # best first
        ranks = np.empty(len(order))
        ranks[order] = np.arange(len(order))
        out[row] = -1.0 - ranks / len(order)
        top = tuple(int(i) for i in order[:k])
        out[row, list(top)] = 1.0 + rescore(Query(query.user_id, query.history, top))
    return out
