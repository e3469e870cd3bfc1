"""A popularity-bias control at scoring time, as a wrapper around any fitted recommender.

    s'(u, j) = s(u, j) - gamma * log(1 + n_j)

with n_j the training count of item j. For a recommender whose scores are logits of a
softmax over items (the fusion's gate is fitted by listwise cross-entropy; SASRec and the LLM
recommender are trained with it), this divides the predicted probability by
`(1 + n_j) ** gamma`: the inference step of PDA (Zhang et al., SIGIR 2021, "Causal
Intervention for Leveraging Popularity Bias"), which removes popularity's push by that power.
`gamma = 0` leaves the ranking as it is; larger values trade accuracy for less mainstream
lists. Items without training interactions (new releases) get no penalty.

The default gamma is chosen on validation (`config.DEBIAS`, `benchmarks/debias.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmsrarec.data import Dataset, Item
from mmsrarec.errors import ConfigError
from mmsrarec.recommenders.base import Query, Recommender

DEBIAS_PART = "popularity debias"  # its name among the score's parts (`contributions`)


def log_popularity(dataset: Dataset) -> np.ndarray:
    """log(1 + training count) per item index [n_items + 1] (padding 0)."""
    counts = np.asarray(dataset.train_popularity(), dtype=np.float64)
    counts[0] = 0.0
    return np.log1p(counts)


class Debiased(Recommender):
    """`member`'s scores less `gamma` times each item's log training popularity.

    Args:
        member: The recommender whose ranking is debiased (fitted by `fit`, or already
            fitted when `log_pop` is given).
        gamma: Strength (>= 0); 0 leaves the scores unchanged.
        log_pop: `log_popularity(dataset)` of a fitted member, so that a wrapper can be made
            per request without fitting again (`Debiased.around`).
    """

    def __init__(self, member: Recommender, gamma: float, log_pop: np.ndarray | None = None):
        if not np.isfinite(gamma) or gamma < 0:
            raise ConfigError(f"`debias` must be a finite number >= 0, got {gamma}")
        self.member = member
        self.gamma = float(gamma)
        self.log_pop = log_pop
        self.name = member.name

    @classmethod
    def around(cls, member: Recommender, dataset: Dataset, gamma: float) -> Debiased:
        """A wrapper around an already fitted `member` (nothing is fitted again)."""
        return cls(member, gamma, log_popularity(dataset))

    @property
    def reads_text(self) -> bool:  # type: ignore[override]
        return self.member.reads_text

    @property
    def costly(self) -> bool:  # type: ignore[override]
        return self.member.costly

    def screen(self, query: Query) -> Recommender | None:
        return self.member.screen(query)  # the penalty moves with no removal

    def fit(self, dataset: Dataset, seed: int) -> None:
        self.member.fit(dataset, seed)
        self.log_pop = log_popularity(dataset)

    def hide_ids(self, items: frozenset[int]) -> None:
        self.member.hide_ids(items)

    def add_items(self, items: Sequence[Item]) -> None:
        self.member.add_items(items)  # they have no training count: no penalty

    def _penalty(self, width: int) -> np.ndarray:
        """gamma * log(1 + count) over `width` columns; items added since the fit get 0."""
        if self.log_pop is None:
            raise ConfigError("`Debiased` needs `fit` or `Debiased.around` before scoring")
        return self.gamma * np.pad(self.log_pop, (0, max(0, width - len(self.log_pop))))

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        scores = self.member.score_catalog(queries)
        return scores - self._penalty(scores.shape[1])[None, :]

    def score_candidates(self, queries: Sequence[Query]) -> list[np.ndarray]:
        penalty = self._penalty(1 + max((max(q.candidates, default=0) for q in queries),
                                        default=0))  # fmt: skip
        return [scores - penalty[list(query.candidates)]
                for scores, query in zip(self.member.score_candidates(queries), queries,
                                         strict=True)]  # fmt: skip

    def contributions(self, queries: Sequence[Query]) -> list[dict[str, np.ndarray]]:
        """The member's parts, and the penalty as a part of its own (where gamma > 0)."""
        parts = self.member.contributions(queries)
        if self.gamma == 0:
            return parts
        penalty = self._penalty(1 + max((max(q.candidates, default=0) for q in queries),
                                        default=0))  # fmt: skip
        return [{**row, DEBIAS_PART: -penalty[list(query.candidates)]}
                for row, query in zip(parts, queries, strict=True)]  # fmt: skip
