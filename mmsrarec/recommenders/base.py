"""The recommender interface every method implements and the evaluator calls."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmsrarec.data import Dataset, Item, Stage
from mmsrarec.errors import ConfigError


@dataclass(frozen=True)
class Query:
    """One prediction request.

    Attributes:
        user_id: raw user id (may be unknown to the model: score from `history` alone).
        history: item indices (1-based), chronological, everything the model may see.
        candidates: item indices to score (sampled protocol); empty for catalog ranking.
    """

    user_id: str
    history: tuple[int, ...]
    candidates: tuple[int, ...] = ()

    @classmethod
    def from_dataset(cls, dataset: Dataset, user: str, stage: Stage, sampled: bool) -> Query:
        candidates = tuple(dataset.candidates(user, stage)) if sampled else ()
        return cls(user, tuple(dataset.history(user, stage)), candidates)


class Recommender(ABC):
    """Scores items for users. Higher score = more likely next item.

    `fit` may read only `dataset.train_sequences()` and, for early stopping, the validation
    stage (`dataset.history(u, "valid")`, `dataset.target(u, "valid")`); never the test stage.
    """

    name: str = "recommender"
    #: Scores items that have no interactions (no trained ID: new releases) from their text or
    #: fields. An ID-only recommender does not; a fusion then leaves those items to others.
    reads_text: bool = False

    def fit(self, dataset: Dataset, seed: int) -> None:  # noqa: B027 - optional for baselines
        """Train on the training split. Baselines without parameters may do nothing."""

    @abstractmethod
    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        """Scores of every item for each query: float array [len(queries), n_items + 1].

        Column 0 (padding) is ignored by the evaluator.
        """

    def add_items(self, items: Sequence[Item]) -> None:
        """The catalog grew by `items` (indices after the last), which have no interactions:
        score them from now on. Only recommenders that read text can (`reads_text`)."""
        raise ConfigError(
            f"`{self.name}` cannot score items added after training (it reads no text): serve "
            "a recommender that does (`mmsrarec`, `llm-recommender`, `sasrec-text`, "
            "`content-knn`) or retrain with the new items"
        )

    def score_candidates(self, queries: Sequence[Query]) -> list[np.ndarray]:
        """Scores of each query's `candidates`, same order. Default: gather from the catalog."""
        catalog = self.score_catalog(queries)
        return [catalog[row, list(query.candidates)] for row, query in enumerate(queries)]

    def contributions(self, queries: Sequence[Query]) -> list[dict[str, np.ndarray]]:
        """Each query's candidate scores split into named parts that sum to
        `score_candidates` (float arrays in the candidates' order). Default: one part, this
        recommender's own score; a fusion gives each member's (`FusionRecommender`)."""
        return [{self.name: scores} for scores in self.score_candidates(queries)]


class Reseeded(Recommender):
    """`member` fitted with `seed + offset`: an independent run of the same method, so that a
    fusion can add a second collaborative model where another adds the LLM."""

    def __init__(self, member: Recommender, offset: int, name: str) -> None:
        self.member = member
        self.offset = offset
        self.name = name

    @property
    def reads_text(self) -> bool:  # type: ignore[override]
        return self.member.reads_text

    def fit(self, dataset: Dataset, seed: int) -> None:
        self.member.fit(dataset, seed + self.offset)

    def add_items(self, items: Sequence[Item]) -> None:
        self.member.add_items(items)

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        return self.member.score_catalog(queries)
