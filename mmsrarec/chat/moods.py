"""Mood and soft words to genres by meaning, with the sentence encoder.

"something spooky" names no genre; the encoder puts "a spooky movie" near "a scary movie",
one of Horror's descriptors (`lexicon.GENRE_DESCRIPTORS`). A word takes the genre of its
nearest descriptor when that similarity is at least `min_similarity` and beats every other
genre's best by `margin` (else it stays a soft wish, searched in the catalog by `catalog.py`).

    moods = MoodMap.build(encoder, genres)
    moods.genre_of(["spooky", "tonight"])   # -> [MoodGenre("spooky", "Horror", 0.83)]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from mmsrarec.chat import lexicon as lx
from mmsrarec.models.embeddings import SentenceEncoder

TEMPLATE = "a {} movie"
MAX_CACHED = 20_000  # words remembered; users' words are unbounded, memory is not


@dataclass(frozen=True)
class MoodGenre:
    """A message word read as a genre."""

    word: str
    genre: str
    similarity: float


class MoodMap:
    """Descriptor embeddings of each genre the catalog has."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        genres: Sequence[str],
        vectors: np.ndarray,
        min_similarity: float,
        margin: float,
    ) -> None:
        self.encoder = encoder
        self.genres = list(genres)  # genre of each descriptor row
        self.vectors = vectors  # [n_descriptors, dim], unit rows
        self.min_similarity = min_similarity
        self.margin = margin
        self._cache: dict[str, MoodGenre | None] = {}

    @classmethod
    def build(
        cls,
        encoder: SentenceEncoder,
        genres: Collection[str],
        min_similarity: float = 0.8,
        margin: float = 0.08,
    ) -> MoodMap:
        rows = [
            (genre, word)
            for genre, words in lx.GENRE_DESCRIPTORS.items()
            if genre in genres
            for word in words.split()
        ]
        vectors = encoder.encode([TEMPLATE.format(word) for _, word in rows]) if rows else None
        return cls(encoder, [g for g, _ in rows], vectors, min_similarity, margin)

    def genre_of(self, words: Sequence[str]) -> list[MoodGenre]:
        """The words that read as a genre, in order (each word once)."""
        new = [w for w in dict.fromkeys(words) if w not in self._cache]
        if len(self._cache) + len(new) > MAX_CACHED:
            self._cache.clear()
        if new and self.vectors is not None:
            similarity = self.encoder.encode([TEMPLATE.format(w) for w in new]) @ self.vectors.T
            for word, row in zip(new, similarity, strict=True):  # row: [n_descriptors]
                self._cache[word] = self._best(word, row)
        return [m for w in dict.fromkeys(words) if (m := self._cache.get(w)) is not None]

    def _best(self, word: str, row: np.ndarray) -> MoodGenre | None:
        best: dict[str, float] = {}
        for genre, value in zip(self.genres, row.tolist(), strict=True):
            best[genre] = max(best.get(genre, -1.0), value)
        ranked = sorted(best.items(), key=lambda pair: -pair[1])
        top, score = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else -1.0
        if score < self.min_similarity or score - runner_up < self.margin:
            return None
        return MoodGenre(word, top, round(score, 3))
