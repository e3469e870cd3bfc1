"""Full ranking in two stages: a cheap recommender's top `k` unseen items, re-ranked by an
expensive one that scores only given candidates (an LLM prompt per candidate).

`rerank_top_k` takes the first stage's candidates from its `top_k` (an approximate
nearest-neighbour index where it has one) and never scores the whole catalog; `rerank_top`
ranks the whole catalog, for the evaluation's full protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mmsrarec.recommenders.base import Query, Recommender, TopItems


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


def rerank_top_k(
    first: Recommender,
    queries: Sequence[Query],
    k: int,
    n: int,
    rescore: Callable[[Query], np.ndarray],
) -> list[TopItems]:
    """The `n` best of `first`'s top `k` unseen items per query, by `rescore` (ties: the lower
    item index, as everywhere in `top_k`), scored `1 + rescore` as in `rerank_top`."""
    out = []
    for query, head in zip(queries, first.top_k(queries, k), strict=True):
        scores = np.asarray(rescore(Query(query.user_id, query.history, tuple(head.items))))
        order = np.lexsort((head.items, -scores))[:n]
        out.append(TopItems(head.items[order], 1.0 + scores[order].astype(np.float64)))
    return out
