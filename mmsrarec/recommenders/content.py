"""Content baselines: they score every item from its text or fields, so they rank items that
have no interactions (the new-releases split) as well as any other.

- `content-knn`: cosine between an item's text vector and the user's profile, the
  recency-weighted mean of the text vectors of the last `history` items (weight `decay` ** age);
- `genre-profile`: overlap of an item's categories with the user's recency-weighted
  category counts (a catalog field, `class` on ML-100K), normalised by the item's number of
  categories;
- `latest`: the newest release first (a catalog field, `release_year` on ML-100K), then
  training popularity.

None of them reads an interaction for fitting, except `latest`'s popularity tie-breaker
(training counts only, where cold items have none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmsrarec.data import Dataset, Item
from mmsrarec.data.coldstart import default_rule
from mmsrarec.errors import DataError, NotPreparedError
from mmsrarec.models.item_text import TextFeatures, with_padding
from mmsrarec.recommenders.base import Query, Recommender

HISTORY = 20
DECAY = 0.9


def recency_weights(history: Sequence[int], size: int, decay: float) -> np.ndarray:
    """[n_items + 1]: decay ** age summed per item over the last `HISTORY` history items."""
    weights = np.zeros(size, dtype=np.float64)
    recent = np.asarray(history[-HISTORY:], dtype=np.int64)
    np.add.at(weights, recent, decay ** np.arange(len(recent))[::-1])
    return weights


class ContentKNNRecommender(Recommender):
    """Cosine of each item's text vector with the user's recency-weighted profile.

    Args:
        features: the items' text vectors (e.g. the sentence encoder's).
    """

    name = "content-knn"
    reads_text = True

    def __init__(self, features: TextFeatures, decay: float = DECAY) -> None:
        self.features = features
        self.decay = decay
        self.vectors: np.ndarray | None = None  # [n_items + 1, d], unit rows, row 0 zeros
        self.item_kind = "item"

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Normalise the text vectors (no interaction is read)."""
        self.vectors = with_padding(_unit(self.features.catalog(dataset)))
        self.item_kind = dataset.item_kind

    def add_items(self, items: Sequence[Item]) -> None:
        vectors = _require(self.vectors, self.name)
        new = _unit(self.features.of_items(items, self.item_kind))
        self.vectors = np.concatenate([vectors, new.astype(vectors.dtype)])

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        vectors = _require(self.vectors, self.name)
        weights = np.stack([recency_weights(q.history, len(vectors), self.decay) for q in queries])
        return (weights @ vectors) @ vectors.T  # [U, d] profiles -> [U, n_items + 1]


class GenreProfileRecommender(Recommender):
    """Recency-weighted overlap of categories (a catalog field of space-separated values)."""

    name = "genre-profile"
    reads_text = True

    def __init__(self, field: str = "class", decay: float = DECAY) -> None:
        self.field = field
        self.decay = decay
        self.genres: np.ndarray | None = None  # [n_items + 1, n_genres], rows sum to 1

    def fit(self, dataset: Dataset, seed: int) -> None:
        """One row of categories per item (no interaction is read)."""
        values = [item.fields.get(self.field, "").split() for item in dataset.items]
        names = sorted({value for row in values for value in row})
        if not names:
            raise DataError(f"no item of `{dataset.name}` has a `{self.field}` field")
        column = {name: j for j, name in enumerate(names)}
        genres = np.zeros((dataset.n_items + 1, len(names)))
        for row, item_values in enumerate(values, start=1):
            for value in item_values:
                genres[row, column[value]] = 1.0 / len(item_values)
        self.genres = genres

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        genres = _require(self.genres, self.name)
        weights = np.stack([recency_weights(q.history, len(genres), self.decay) for q in queries])
        profile = weights @ (genres > 0)  # [U, n_genres]: weighted counts
        return profile @ genres.T


class LatestRecommender(Recommender):
    """Newest release first (a numeric catalog field), ties by training popularity."""

    name = "latest"
    reads_text = True

    def __init__(self, field: str | None = None) -> None:
        self.field = field
        self.scores: np.ndarray | None = None  # [n_items + 1]

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Release order from the catalog, popularity from the training counts only."""
        field = self.field or default_rule(dataset.name).field
        release = np.full(dataset.n_items + 1, -np.inf)
        for index, item in enumerate(dataset.items, start=1):
            try:
                release[index] = float(item.fields.get(field, ""))
            except ValueError:
                continue  # no release value: after every dated item
        if not np.isfinite(release).any():
            raise DataError(f"no item of `{dataset.name}` has a numeric `{field}` field")
        counts = np.asarray(dataset.train_popularity(), dtype=np.float64)
        undated = np.nanmin(np.where(np.isfinite(release), release, np.nan)) - 1
        release = np.where(np.isfinite(release), release, undated)
        self.scores = release * (counts.max() + 1) + counts  # by release, then by count
        self.scores[0] = -np.inf

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        return np.tile(_require(self.scores, self.name), (len(queries), 1))


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)


def _require(value: np.ndarray | None, name: str) -> np.ndarray:
    if value is None:
        raise NotPreparedError(f"`{name}` is not fitted: call `fit(dataset, seed)`")
    return value
