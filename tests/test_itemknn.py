"""Sparse item-kNN against the first, dense implementation (kept here as the reference)."""

from __future__ import annotations

import numpy as np
import pytest

from mmsrarec.evaluation.protocols import evaluate_full, evaluate_sampled
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.recommenders.itemknn import ItemKNNConfig, ItemKNNRecommender, cooccurrence


def dense_cooccurrence(sequences, n_items: int, window: int) -> np.ndarray:
    size = n_items + 1
    pairs, weights = [], []
    for seq in sequences:
        arr = np.asarray(seq, dtype=np.int64)
        reach = len(arr) - 1 if window == 0 else min(window, len(arr) - 1)
        for d in range(1, reach + 1):
            pairs.append(arr[:-d] * size + arr[d:])
            weights.append(np.full(len(arr) - d, 1.0 / d))
    if not pairs:
        return np.zeros((size, size))
    counts = np.bincount(np.concatenate(pairs), np.concatenate(weights), minlength=size * size)
    matrix = counts.reshape(size, size)
    matrix = matrix + matrix.T
    np.fill_diagonal(matrix, 0.0)
    return matrix


class DenseItemKNN(Recommender):
    """The first version: an (n_items + 1)^2 dense similarity."""

    name = "item-knn-dense"

    def __init__(self, config: ItemKNNConfig | None = None) -> None:
        self.config = config or ItemKNNConfig()

    def fit(self, dataset, seed: int) -> None:
        cfg = self.config
        sequences = list(dataset.train_sequences().values())
        counts = np.asarray(dataset.train_popularity(), dtype=np.float64)
        cooc = dense_cooccurrence(sequences, dataset.n_items, cfg.window)
        norms = np.sqrt(counts)
        denominator = np.outer(norms, norms) + cfg.shrink
        sim = np.divide(cooc, denominator, out=np.zeros_like(cooc), where=denominator > 0)
        if 0 < cfg.neighbors < dataset.n_items:
            weakest = np.argpartition(-sim, cfg.neighbors, axis=1)[:, cfg.neighbors :]
            np.put_along_axis(sim, weakest, 0.0, axis=1)
        self.similarity = sim.astype(np.float32)
        self.prior = counts / max(counts.max(), 1.0)

    def score_catalog(self, queries):
        cfg = self.config
        weights = np.zeros((len(queries), self.similarity.shape[0]), dtype=np.float32)
        for row, query in enumerate(queries):
            recent = np.asarray(query.history[-cfg.history :], dtype=np.int64)
            ages = np.arange(len(recent))[::-1]
            np.add.at(weights[row], recent, cfg.decay**ages)
        return weights @ self.similarity + cfg.popularity * self.prior


@pytest.fixture(scope="module")
def both(ml100k):
    sparse, dense = ItemKNNRecommender(), DenseItemKNN()
    sparse.fit(ml100k, 0)
    dense.fit(ml100k, 0)
    return sparse, dense


def test_ml100k_similarity_is_the_dense_one_bit_for_bit(both) -> None:
    sparse, dense = both
    assert np.array_equal(sparse.similarity.toarray(), dense.similarity)
    assert sparse.similarity.nnz <= 200 * sparse.similarity.shape[0]
    np.testing.assert_array_equal(sparse.prior, dense.prior)


@pytest.mark.parametrize("stage", ["valid", "test"])
def test_ml100k_scores_and_every_rank_equal_the_dense_ones(both, ml100k, stage) -> None:
    sparse, dense = both
    queries = [Query.from_dataset(ml100k, u, stage, sampled=False) for u in ml100k.eval_users]
    ours, theirs = sparse.score_catalog(queries), dense.score_catalog(queries)
    # The same float32 products, summed in another order than BLAS's (which fuses
    # multiply-adds): at most a few float32 units in the last place apart.
    np.testing.assert_allclose(ours, theirs, rtol=4 * 2.0**-23, atol=0)
    for protocol in (evaluate_full, evaluate_sampled):
        a, b = protocol(sparse, ml100k, stage), protocol(dense, ml100k, stage)
        np.testing.assert_array_equal(a.ranks, b.ranks)
        assert a.metrics == b.metrics


def test_sparse_cooccurrence_sums_over_chunks(monkeypatch) -> None:
    sequences = [[1, 2, 3, 1], [3, 2], [4, 1, 2, 2, 5], [5]]
    expected = dense_cooccurrence(sequences, 5, 0)
    np.testing.assert_array_equal(cooccurrence(sequences, 5, 0).toarray(), expected)
    monkeypatch.setattr("mmsrarec.recommenders.itemknn.CHUNK_PAIRS", 2)  # a chunk per sequence
    np.testing.assert_allclose(cooccurrence(sequences, 5, 0).toarray(), expected, rtol=1e-15)
    np.testing.assert_array_equal(
        cooccurrence(sequences, 5, 2).toarray(), dense_cooccurrence(sequences, 5, 2)
    )


def test_ml100k_similarity_by_blocks_of_rows_is_the_same(both, ml100k, monkeypatch) -> None:
    """Rows made symmetric, normalised and cut 100 at a time: the same matrix, bit for bit."""
    monkeypatch.setattr("mmsrarec.recommenders.itemknn.BLOCK_ROWS", 100)
    blocks = ItemKNNRecommender()
    blocks.fit(ml100k, 0)
    assert np.array_equal(blocks.similarity.toarray(), both[1].similarity)
    assert blocks.similarity.nnz == both[0].similarity.nnz
