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


@dataclass(frozen=True)
class TopItems:
    """One query's best items.

    Attributes:
        items: item indices (1-based), best first: int64 [<= k].
        scores: their scores, same order: float64 [<= k].
    """

    items: np.ndarray
    scores: np.ndarray


def top_items(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best-scored entries of `row` whose score is not -inf, best first; ties
    in score keep the lower index first (as a stable sort of the whole row would)."""
    kept = np.flatnonzero(row > -np.inf)
    if k < 1:
        return kept[:0]
    if len(kept) > k:
        kth = np.partition(row[kept], len(kept) - k)[len(kept) - k]  # the k-th best score
        kept = kept[row[kept] >= kth]  # k, or more where scores tie at the k-th place
    return kept[np.lexsort((kept, -row[kept]))][:k]


def unseen_top(row: np.ndarray, history: Sequence[int], k: int) -> TopItems:
    """The k best items of catalog scores `row` [n_items + 1] outside `history` and padding."""
    row = np.array(row, dtype=np.float64)
    row[0] = -np.inf
    row[list(history)] = -np.inf
    best = top_items(row, k)
    return TopItems(best, row[best])


class Recommender(ABC):
    """Scores items for users. Higher score = more likely next item.

    `fit` may read only `dataset.train_sequences()` and, for early stopping, the validation
    stage (`dataset.history(u, "valid")`, `dataset.target(u, "valid")`); never the test stage.
    """

    name: str = "recommender"
    #: Scores items that have no interactions (no trained ID: new releases) from their text or
    #: fields. An ID-only recommender does not; a fusion then leaves those items to others.
    reads_text: bool = False
    #: One query costs a forward pass of an LLM: leave-one-out screens removals with the
    #: cheaper parts of a fusion before re-scoring them with it (`FusionRecommender.screen`).
    costly: bool = False

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

    def screen(self, query: Query) -> Recommender | None:
        """A cheaper stand-in whose scores move as this recommender's do when `query`'s
        history loses an item, to choose which removals to re-score (`recommenders.explain`);
        None where re-scoring every removal costs no more than the stand-in would."""
        return None

    def top_k(self, queries: Sequence[Query], k: int) -> list[TopItems]:
        """Each query's `k` best items outside its history, best first (ties: the lower index).

        Default: from `score_catalog`. A recommender with a faster retrieval (an approximate
        nearest-neighbour index, `recommenders.ann.ANNRecommender`; a re-ranker over a first
        stage's candidates) overrides it.

        Raises:
            ValueError: the recommender returned NaN scores.
        """
        catalog = np.asarray(self.score_catalog(queries))
        if np.isnan(catalog).any():
            raise ValueError(f"recommender `{self.name}` returned NaN scores")
        return [unseen_top(row, q.history, k) for row, q in zip(catalog, queries, strict=True)]


class Held(Recommender):
    """`member`'s scores for one query, returned for every query: a costly member held still
    while the others are re-scored (`FusionRecommender.screen`)."""

    def __init__(self, member: Recommender, query: Query) -> None:
        self.name = member.name
        self.reads_text = member.reads_text
        self.scores = np.asarray(member.score_catalog([query]))

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        return np.repeat(self.scores, len(queries), axis=0)


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

    @property
    def costly(self) -> bool:  # type: ignore[override]
        return self.member.costly

    def screen(self, query: Query) -> Recommender | None:
        return self.member.screen(query)

    def fit(self, dataset: Dataset, seed: int) -> None:
        self.member.fit(dataset, seed + self.offset)

    def add_items(self, items: Sequence[Item]) -> None:
        self.member.add_items(items)

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        return self.member.score_catalog(queries)
