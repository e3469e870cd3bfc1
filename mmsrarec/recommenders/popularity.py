"""Most-popular: every user gets the items ranked by their training interaction counts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmsrarec.data import Dataset, Item
from mmsrarec.errors import NotPreparedError
from mmsrarec.recommenders.base import Query, Recommender


class PopularityRecommender(Recommender):
    """Score of item i = number of training interactions with i (same for every user).

    Counts come from `dataset.train_popularity()` only, never from validation or test
    positions. Equal counts are ties, which the evaluator breaks against the target.
    """

    name = "most-popular"

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None  # [n_items + 1], float

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Count training interactions per item (`seed` is unused: the method is deterministic)."""
        self.counts = np.asarray(dataset.train_popularity(), dtype=np.float64)

    def add_items(self, items: Sequence[Item]) -> None:
        """New items have no training interaction: a count of 0."""
        if self.counts is None:
            raise NotPreparedError("`most-popular` recommender is not fitted")
        self.counts = np.concatenate([self.counts, np.zeros(len(items))])

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        if self.counts is None:
            raise NotPreparedError(
                "`most-popular` recommender is not fitted: call `fit(dataset, seed)`"
            )
        return np.tile(self.counts, (len(queries), 1))
