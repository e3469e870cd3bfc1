"""`Recommender.top_k`: the default from catalog scores, re-ranking over a first stage's top
items, and approximate nearest neighbours with exact rescoring."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from test_sasrec import TINY

from mmsrarec.recommenders.ann import ANNRecommender
from mmsrarec.recommenders.base import Query, Recommender, top_items
from mmsrarec.recommenders.rerank import rerank_top, rerank_top_k
from mmsrarec.recommenders.sasrec import SASRecRecommender
from mmsrarec.tools.ann import FaissItemIndex


class Fixed(Recommender):
    """Scores from a fixed table [n_queries, n_items + 1], one row per query, in order."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        return self.table[: len(queries)]


def stable_order(row: np.ndarray, history: Sequence[int]) -> np.ndarray:
    masked = row.astype(np.float64)
    masked[[0, *history]] = -np.inf
    order = np.argsort(-masked, kind="stable")
    return order[masked[order] > -np.inf]


def test_default_top_k_is_the_stable_order_of_unseen_items() -> None:
    rng = np.random.default_rng(0)
    table = rng.integers(0, 6, size=(20, 51)).astype(float)  # many ties
    table[3, 7:] = -np.inf  # fewer finite items than asked
    queries = [Query(str(u), tuple(rng.choice(np.arange(1, 51), 8, replace=False)))
               for u in range(20)]  # fmt: skip
    for k in (1, 5, 30):
        for query, row, best in zip(queries, table, Fixed(table).top_k(queries, k), strict=True):
            expected = stable_order(row, query.history)[:k]
            np.testing.assert_array_equal(best.items, expected)
            np.testing.assert_array_equal(best.scores, row[expected])
            assert not set(best.items.tolist()) & {0, *query.history}
    assert len(top_items(np.array([3.0, -np.inf, 1.0]), 0)) == 0


def test_rerank_top_k_is_the_head_of_the_reranked_catalog() -> None:
    rng = np.random.default_rng(1)
    table = rng.normal(size=(6, 41))
    queries = [Query(str(u), (1 + u, 2 + u, 30)) for u in range(6)]

    def rescore(query: Query) -> np.ndarray:
        return (np.asarray(query.candidates) % 7) / 7.0  # ties, in [0, 1)

    catalog = rerank_top(table, queries, 10, rescore)
    for query, row, best in zip(
        queries, catalog, rerank_top_k(Fixed(table), queries, 10, 4, rescore), strict=True
    ):
        np.testing.assert_array_equal(best.items, stable_order(row, query.history)[:4])
        np.testing.assert_allclose(best.scores, row[best.items])


def test_faiss_index_recall_at_100_on_clustered_vectors() -> None:
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(40, 32)) * 2
    vectors = (centres[rng.integers(0, 40, 20_000)] + rng.normal(size=(20_000, 32))).astype(
        np.float32
    )
    queries = vectors[rng.integers(0, 20_000, 50)] + rng.normal(size=(50, 32)).astype(np.float32)
    found = FaissItemIndex(vectors).search(queries, 100)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :100]
    recall = np.mean([len(set(a) & set(b)) / 100 for a, b in zip(found, exact, strict=True)])
    assert recall >= 0.95
    assert (FaissItemIndex(vectors[:10]).search(queries[:2], 15)[:, 10:] == -1).all()


def test_ann_top_k_equals_exact_top_k_and_skips_the_history(tiny_dataset) -> None:
    sasrec = SASRecRecommender(TINY, progress=False)
    ann = ANNRecommender(sasrec, FaissItemIndex, pool=2)
    ann.fit(tiny_dataset, 0)
    queries = [Query.from_dataset(tiny_dataset, u, "test", False) for u in tiny_dataset.eval_users]
    for approx, exact, query in zip(
        ann.top_k(queries, 10), sasrec.top_k(queries, 10), queries, strict=True
    ):
        np.testing.assert_array_equal(approx.items, exact.items)  # a small catalog: one cell
        np.testing.assert_allclose(approx.scores, exact.scores, rtol=1e-5, atol=1e-6)
        assert not set(approx.items.tolist()) & set(query.history)
    np.testing.assert_array_equal(ann.score_catalog(queries), sasrec.score_catalog(queries))
