"""Random scores: the floor every method must clear (HR@5 = 5/21 on the 1 + 20 protocol)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from mmsrarec.data import Dataset
from mmsrarec.errors import NotPreparedError
from mmsrarec.recommenders.base import Query, Recommender


class RandomRecommender(Recommender):
    """Uniform random scores, reproducible per (seed, user).

    Each user's scores come from a generator seeded with `(seed, crc32(user_id))`, so they do
    not depend on batching or on the order in which users are scored. Scores are continuous,
    hence never tied.
    """

    name = "random"

    def __init__(self) -> None:
        self.seed: int | None = None
        self.n_items = 0

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Remember the catalog size and the seed; nothing is learned."""
        self.seed = seed
        self.n_items = dataset.n_items

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        if self.seed is None:
            raise NotPreparedError("`random` recommender is not fitted: call `fit(dataset, seed)`")
        scores = np.empty((len(queries), self.n_items + 1))
        for row, query in enumerate(queries):
            user_key = zlib.crc32(query.user_id.encode("utf-8"))
            scores[row] = np.random.default_rng([self.seed, user_key]).random(self.n_items + 1)
        return scores
