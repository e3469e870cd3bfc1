"""Item-kNN on sequential co-occurrence: a strong non-neural baseline.

Similarity: two items co-occur when one user interacted with both within `window`
positions of each other in a training sequence; pairs at distance d count `1 / d`
(nearby pairs say more about "what comes next"). With C the co-occurrence matrix and
n_i the training count of item i, sim(i, j) = C_ij / (sqrt(n_i * n_j) + shrink), i.e. a
shrunk cosine; only each item's `neighbors` most similar items are kept.

Score of item j for a history h_1..h_T: sum over the last `history` items of
decay ** (T - t) * sim(h_t, j), plus `popularity` * (normalised training count of j),
a tiny tie-breaker for users whose items have no neighbours.

Why these choices: recency decay and the 1 / d weight each raise validation HR@10 well
above the plain variants; the other settings move it by less than the noise (the numbers:
`benchmarks/README.md`, "Item-kNN choices").

Sparse throughout (scipy.sparse): co-occurrences are summed a chunk of sequences at a time,
and only each item's `neighbors` strongest similarities are kept, so memory grows with the
number of co-occurring pairs, not with n_items² (10^5 items would need 80 GB dense). The
similarity matrix equals the first, dense version's bit for bit on ML-100K (one chunk there,
so every sum runs in the same order); scores differ from its dense float32 product in the
last bit only (BLAS's summation order), and every ML-100K rank is the same
(`tests/test_itemknn.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mmsrarec.data import Dataset
from mmsrarec.errors import ConfigError, NotPreparedError
from mmsrarec.recommenders.base import Query, Recommender


@dataclass(frozen=True)
class ItemKNNConfig:
    """Item-kNN settings (defaults tuned on the ML-100K validation stage, full ranking).

    Attributes:
        window: largest position distance of a co-occurring pair; 0 = whole sequence.
        neighbors: similar items kept per item; 0 = all.
        shrink: added to the cosine denominator, damping rare items.
        decay: weight ratio between a history item and the next more recent one.
        history: most recent history items that vote.
        popularity: weight of the normalised popularity tie-breaker.
    """

    window: int = 0
    neighbors: int = 200
    shrink: float = 10.0
    decay: float = 0.8
    history: int = 20
    popularity: float = 1e-3

    def __post_init__(self) -> None:
        if self.window < 0 or self.neighbors < 0 or self.history < 1:
            raise ConfigError("item-kNN: `window` and `neighbors` must be >= 0 and `history` >= 1")
        if not 0.0 < self.decay <= 1.0:
            raise ConfigError(f"item-kNN: `decay` must be in (0, 1], got {self.decay}")


CHUNK_PAIRS = 1 << 24  # pairs summed per step: about 400 MB of keys, weights and sort
BLOCK_ROWS = 4096  # similarity rows made symmetric, normalised and cut to their neighbours at once


def cooccurrence(sequences: Iterable[Sequence[int]], n_items: int, window: int) -> sp.csr_array:
    """Symmetric co-occurrence [n_items + 1, n_items + 1], float64, zero diagonal: pairs at
    distance d weigh 1 / d.

    C[i, j] sums the pairs (earlier i, later j); the result is C + C.T, as in the dense
    original. Pairs are summed per chunk of at most `CHUNK_PAIRS` (in sequence order, by
    `bincount`), and chunks are added in turn.
    """
    return _symmetric(directed_cooccurrence(sequences, n_items, window))


def directed_cooccurrence(
    sequences: Iterable[Sequence[int]], n_items: int, window: int
) -> sp.csr_array:
    """C: the pairs (earlier i, later j), weighted 1 / d and summed as `cooccurrence` says."""
    size = n_items + 1
    total = sp.csr_array((size, size), dtype=np.float64)
    keys: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    pending = 0
    for seq in sequences:
        arr = np.asarray(seq, dtype=np.int64)
        reach = len(arr) - 1 if window == 0 else min(window, len(arr) - 1)
        for d in range(1, reach + 1):
            keys.append(arr[:-d] * size + arr[d:])
            weights.append(np.full(len(arr) - d, 1.0 / d))
            pending += len(arr) - d
        if pending >= CHUNK_PAIRS:
            total = total + _summed(keys, weights, size)
            keys, weights, pending = [], [], 0
    if keys:
        total = total + _summed(keys, weights, size)
    return total


def _symmetric(directed: sp.csr_array, reverse: sp.csr_array | None = None,
               start: int = 0) -> sp.csr_array:  # fmt: skip
    """Rows `start`.. of C + C.T, less the diagonal, from those rows of C and of C.T
    (`reverse`, C.T itself by default)."""
    both = (directed + (directed.T if reverse is None else reverse)).tocoo()
    off = both.row + start != both.col  # an item never co-occurs with itself
    return sp.csr_array((both.data[off], (both.row[off], both.col[off])), shape=both.shape)


def _summed(keys: list[np.ndarray], weights: list[np.ndarray], size: int) -> sp.csr_array:
    """One chunk of pairs as a sparse matrix; equal keys summed in input order."""
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    sums = np.bincount(inverse, np.concatenate(weights), minlength=len(unique))
    return sp.csr_array((sums, (unique // size, unique % size)), shape=(size, size))


def strongest(matrix: sp.csr_array, k: int) -> sp.csr_array:
    """Each row's `k` largest entries, others dropped.

    Where values tie at the k-th place, the kept ones are those `np.argpartition` keeps over
    the whole dense row, as the dense version chose them (2 of ML-100K's rows have such a tie).
    """
    matrix = matrix.tocsr()
    matrix.sort_indices()
    counts = np.diff(matrix.indptr)
    keep = np.ones(matrix.nnz, dtype=bool)
    for row in np.flatnonzero(counts > k):
        span = slice(matrix.indptr[row], matrix.indptr[row + 1])
        values, columns = matrix.data[span], matrix.indices[span]
        kth = np.partition(values, len(values) - k)[len(values) - k]  # the k-th largest
        kept = values >= kth
        if kept.sum() > k:  # a tie at the k-th place
            dense = np.zeros(matrix.shape[1])
            dense[columns] = values
            kept = np.isin(columns, np.argpartition(-dense, k)[:k])
        keep[span] = kept
    rows = np.repeat(np.arange(matrix.shape[0]), counts)[keep]
    return sp.csr_array((matrix.data[keep], (rows, matrix.indices[keep])), shape=matrix.shape)


class ItemKNNRecommender(Recommender):
    """Recency-weighted sum of the cosine similarities of the user's recent items."""

    name = "item-knn"

    def __init__(self, config: ItemKNNConfig | None = None) -> None:
        self.config = config or ItemKNNConfig()
        self.similarity: sp.csr_array | None = None  # [n_items + 1, n_items + 1], float32
        self.prior: np.ndarray | None = None  # [n_items + 1], popularity in [0, 1]

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Build the similarity matrix from training sequences (deterministic: `seed` unused)."""
        cfg = self.config
        counts = np.asarray(dataset.train_popularity(), dtype=np.float64)
        train = (dataset.train_sequence(user) for user in dataset.sequences)
        directed = directed_cooccurrence(train, dataset.n_items, cfg.window)
        reverse = directed.T.tocsr()
        norms = np.sqrt(counts)
        # A block of rows at a time: only the kept neighbours of every row are ever held whole.
        blocks = []
        for start in range(0, directed.shape[0], BLOCK_ROWS):
            rows = slice(start, start + BLOCK_ROWS)
            sim = _symmetric(directed[rows], reverse[rows], start)
            items = np.repeat(np.arange(start, start + sim.shape[0]), np.diff(sim.indptr))
            sim.data /= norms[items] * norms[sim.indices] + cfg.shrink  # the shrunk cosine
            if 0 < cfg.neighbors < dataset.n_items:
                sim = strongest(sim, cfg.neighbors)
            blocks.append(sim.astype(np.float32))
        self.similarity = sp.vstack(blocks, format="csr")
        self.prior = counts / max(counts.max(), 1.0)

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        if self.similarity is None or self.prior is None:
            raise NotPreparedError(
                "`item-knn` recommender is not fitted: call `fit(dataset, seed)`"
            )
        cfg = self.config
        if not queries:
            return np.zeros((0, self.similarity.shape[0]))
        rows, columns, values = [], [], []
        for row, query in enumerate(queries):
            recent = np.asarray(query.history[-cfg.history :], dtype=np.int64)
            ages = np.arange(len(recent))[::-1]  # 0 = most recent
            rows.append(np.full(len(recent), row))
            columns.append(recent)
            values.append((cfg.decay**ages).astype(np.float32))
        weights = sp.csr_array(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
            shape=(len(queries), self.similarity.shape[0]),
        )  # a repeated item's weights are summed
        return (weights @ self.similarity).toarray() + cfg.popularity * self.prior
