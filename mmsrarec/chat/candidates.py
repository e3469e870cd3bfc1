"""First-stage candidates for a chat user: item-kNN over the items they named.

Scoring the whole catalog with the LLM is too slow on a CPU, so the chat re-ranks only the
item-kNN top-N (plus the items that match the description) with the recommendation graph.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from mmsrarec.data import Dataset
from mmsrarec.recommenders.base import Query
from mmsrarec.recommenders.itemknn import ItemKNNRecommender


class KNNCandidates:
    """Implements `CandidateSource` with a fitted `ItemKNNRecommender`."""

    def __init__(self, dataset: Dataset, knn: ItemKNNRecommender) -> None:
        self.dataset = dataset
        self.knn = knn

    @classmethod
    def fit(cls, dataset: Dataset) -> KNNCandidates:
        """Fit item-kNN on the training split (deterministic, a few seconds on ML-100K)."""
        knn = ItemKNNRecommender()
        knn.fit(dataset, seed=0)
        return cls(dataset, knn)

    def top(
        self,
        history: Sequence[str],
        n: int,
        exclude: Collection[str],
        within: Collection[str] | None = None,
    ) -> list[str]:
        """The `n` best-scored items for `history`, none in `exclude` or `history`, all in
        `within` when given."""
        indices = tuple(self.dataset.index_of(item_id) for item_id in history)
        scores = self.knn.score_catalog([Query("chat", indices)])[0]  # [n_items + 1]
        scores[0] = -np.inf  # padding
        banned = set(exclude) | set(history)
        ranked = []
        for index in np.argsort(-scores, kind="stable"):
            item_id = self.dataset.item(int(index)).item_id
            if item_id not in banned and (within is None or item_id in within):
                ranked.append(item_id)
            if len(ranked) == n:
                break
        return ranked
