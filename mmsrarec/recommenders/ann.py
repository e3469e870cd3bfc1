"""Top-k retrieval from an approximate-nearest-neighbour index, then exact rescoring.

For a model whose scores are inner products (`types.VectorScorer`: SASRec), the index
(`types.VectorIndex`, e.g. `tools.ann.FaissItemIndex`) proposes `pool * k` items plus as many
as the history holds (those are left out); their scores are then computed exactly,
`embed(history) . item_vectors()[j]`, and the best `k` kept. Only `top_k` changes: the
catalog scores, and so every evaluation, are the member's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mmsrarec.data import Dataset
from mmsrarec.errors import NotPreparedError
from mmsrarec.recommenders.base import Query, Recommender, TopItems
from mmsrarec.types import VectorIndex, VectorScorer

DEFAULT_POOL = 4  # candidates asked of the index per item returned


class ANNRecommender(Recommender):
    """`member`'s scores; its `top_k` served from an index over its item vectors.

    Args:
        member: a recommender that is also a `VectorScorer` (a `SASRecRecommender`).
        build_index: makes the index from the item vectors of items 1..n [n, d].
        pool: candidates asked of the index per item returned.
        name: the method's name.
    """

    def __init__(
        self,
        member: Recommender,
        build_index: Callable[[np.ndarray], VectorIndex],
        pool: int = DEFAULT_POOL,
        name: str = "ann",
    ) -> None:
        self.member, self.build_index, self.pool, self.name = member, build_index, pool, name
        self.vectors: np.ndarray | None = None  # [n_items + 1, d]
        self.index: VectorIndex | None = None

    @property
    def scorer(self) -> VectorScorer:
        return self.member  # type: ignore[return-value]

    def fit(self, dataset: Dataset, seed: int) -> None:
        self.member.fit(dataset, seed)
        self.build()

    def build(self) -> None:
        """(Re)build the index from the fitted member's item vectors."""
        self.vectors = np.asarray(self.scorer.item_vectors(), dtype=np.float32)
        self.index = self.build_index(self.vectors[1:])  # row r is item r + 1

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        return self.member.score_catalog(queries)

    def top_k(self, queries: Sequence[Query], k: int) -> list[TopItems]:
        if self.index is None or self.vectors is None:
            raise NotPreparedError(f"`{self.name}` has no index: call `fit` or `build` first")
        if not queries:
            return []
        embedded = np.asarray(self.scorer.embed_histories([q.history for q in queries]))
        asked = self.pool * k + max(len(set(q.history)) for q in queries)
        found = self.index.search(embedded.astype(np.float32), asked) + 1  # -1 pads become 0
        return [
            self._rescored(vector, row, query.history, k)
            for vector, row, query in zip(embedded, found, queries, strict=True)
        ]

    def _rescored(self, vector: np.ndarray, found: np.ndarray, history, k: int) -> TopItems:
        """The best `k` of `found` outside `history`, by exact score (ties: lower index)."""
        candidates = np.setdiff1d(found, [0, *history])  # sorted, unique
        scores = (self.vectors[candidates] @ vector).astype(np.float64)
        best = np.lexsort((candidates, -scores))[:k]
        return TopItems(candidates[best], scores[best])
