"""A user's motivations (after LMMRec): a few groups of their history, each named by keywords
and shown with the items that support it, weighted by recency, that the user can correct.

Each history item t of T gets the recency weight `0.5 ** ((T - 1 - t) / HALF_LIFE)`. Items are
grouped by a spherical k-means (3 to 6 groups by length: `n_motivations`) over one vector per
item: its interaction embedding (rows of a truncated SVD of the training user x item matrix:
items chosen by the same users lie close) next to its idf-weighted keyword vector, each
L2-normalised. A group's keywords are the words with the largest recency-weighted idf mass in
it; its items, its members that carry one of those words, by recency weight (items chosen by
the same people may share no word); its weight, its share of the user's recency weight.
Keywords are the critic-approved ones of the keyword store where an item has them, else the
words of its own text (genres on ML-100K: `evidence.text_keywords`). A user's correction
("not into horror any more") drops the motivations naming the word, and `corrected` also
leaves out of the history the items that carry it.

How a profile is checked (`benchmarks/motivations.py`): an item matches it by the cosine of
its idf keyword vector and the profile's keyword weights; the held-out test item should
match better than a random unseen item (AUC).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mmsrarec.data import Dataset
from mmsrarec.scoring.evidence import text_keywords
from mmsrarec.types import Motivation

HALF_LIFE = 20.0  # history items after which an item's weight halves
EMBEDDING_DIM = 32  # SVD components of the interaction embedding
KEYWORDS = 3  # keywords named per motivation
ITEMS = 3  # supporting items named per motivation
ITERATIONS = 20  # k-means rounds (it settles in fewer on ML-100K histories)
NUMBER = re.compile(r"^\d+s?$")  # years and decades are not motivations


def n_motivations(n_items: int) -> int:
    """3 to 6 groups, one per 10 history items (fewer items than 3: one each)."""
    return min(n_items, max(3, min(6, n_items // 10)))


def recency_weights(n: int) -> np.ndarray:
    """[n]: 1 for the latest item, halving every `HALF_LIFE` items back."""
    return 0.5 ** ((n - 1 - np.arange(n)) / HALF_LIFE)


def interaction_embeddings(dataset: Dataset, dim: int = EMBEDDING_DIM) -> np.ndarray:
    """Items' rows of a truncated SVD of the training user x item matrix, L2-normalised:
    float32 [n_items + 1, dim] (padding and items nobody chose: zeros)."""
    sequences = list(dataset.train_sequences().values())
    matrix = np.zeros((len(sequences), dataset.n_items + 1), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        matrix[row, sequence] = 1.0
    _, values, vt = np.linalg.svd(matrix, full_matrices=False)
    items = (vt[:dim].T * np.sqrt(values[:dim])).astype(np.float32)  # [n_items + 1, dim]
    return _unit(items)


@dataclass(frozen=True)
class KeywordSpace:
    """Every catalog item's keywords as idf-weighted unit vectors.

    Attributes:
        words: the vocabulary.
        idf: log(n_items / items with the word) per word.
        vectors: float32 [n_items + 1, len(words)], rows L2-normalised (padding zeros).
        sources: per item index, "keywords" (from the store) or "text" (its own text).
    """

    words: list[str]
    idf: np.ndarray
    vectors: np.ndarray
    sources: list[str]

    @classmethod
    def build(
        cls, dataset: Dataset, stored: Mapping[str, list[str]], text_words: Callable
    ) -> KeywordSpace:  # text_words: Item -> list[str]
        """`stored`: keywords per raw item id (the store's); `text_words(item)`: the
        fallback for items without them."""
        per_item: list[list[str]] = [[]]
        sources = [""]
        for item in dataset.items:
            words = stored.get(item.item_id)
            sources.append("keywords" if words else "text")
            words = words or text_words(item)
            cleaned = {w.strip().lower() for w in words}
            per_item.append(sorted(w for w in cleaned if w and not NUMBER.match(w)))
        vocabulary = sorted({w for words in per_item for w in words})
        index = {w: n for n, w in enumerate(vocabulary)}
        binary = np.zeros((len(per_item), len(vocabulary)), dtype=np.float32)
        for row, words in enumerate(per_item):
            binary[row, [index[w] for w in words]] = 1.0
        counts = binary[1:].sum(axis=0)
        idf = np.log(dataset.n_items / np.maximum(counts, 1.0)).astype(np.float32)
        return cls(vocabulary, idf, _unit(binary * idf), sources)


def profile(
    history: Sequence[int],
    space: KeywordSpace,
    embeddings: np.ndarray,
    title_of: Callable[[int], str],
    id_of: Callable[[int], str],
    dropped: Sequence[str] = (),
) -> list[Motivation]:
    """The motivations of one history (item indices, chronological), heaviest first.

    Args:
        history: the user's items.
        space: the catalog's keyword vectors.
        embeddings: the items' interaction embeddings (`interaction_embeddings`).
        title_of: title of an item index; `id_of`: its raw id.
        dropped: words the user said they are no longer into: a motivation naming one is
            left out, and so are its items.
    """
    items = np.asarray(history, dtype=np.int64)
    if not len(items):
        return []
    weights = recency_weights(len(items))
    features = np.concatenate([embeddings[items], space.vectors[items]], axis=1)
    groups = _kmeans(_unit(features), weights, n_motivations(len(set(history))))
    out = []
    for group in range(groups.max() + 1):
        members = np.flatnonzero(groups == group)
        if not len(members):
            continue
        present = (space.vectors[items[members]] > 0).astype(np.float64)  # [n, words]
        mass = present.T @ weights[members] * space.idf  # recency-weighted idf per word
        top = [space.words[w] for w in np.argsort(-mass, kind="stable")[:KEYWORDS] if mass[w] > 0]
        if set(top) & {w.lower() for w in dropped}:
            continue
        order = members[np.argsort(-weights[members], kind="stable")]
        columns = [space.words.index(w) for w in top]
        carrying = [m for m in order if (space.vectors[items[m], columns] > 0).any()]
        chosen = list(dict.fromkeys(int(items[m]) for m in carrying or order))[:ITEMS]
        out.append(Motivation(
            keywords=top, item_ids=[id_of(i) for i in chosen],
            titles=[title_of(i) for i in chosen],
            weight=float(weights[members].sum() / weights.sum()),
        ))  # fmt: skip
    return sorted(out, key=lambda m: -m["weight"])


class MotivationModel:
    """The catalog's keyword vectors and interaction embeddings, built once; `profile` of a
    history of raw item ids.

    Args:
        dataset: the prepared dataset (only its training interactions are read).
        stored: keywords per raw item id (the keyword store's), the rest from item text.
    """

    def __init__(self, dataset: Dataset, stored: Mapping[str, list[str]]) -> None:
        self.dataset = dataset
        self.space = KeywordSpace.build(dataset, stored, text_keywords)
        self.embeddings = interaction_embeddings(dataset)

    def profile(self, history: Sequence[str], dropped: Sequence[str] = ()) -> list[Motivation]:
        """The motivations of a history of raw item ids (`profile`)."""
        data = self.dataset
        return profile([data.index_of(i) for i in history], self.space, self.embeddings,
                       lambda i: data.item(i).title, lambda i: data.item(i).item_id,
                       dropped)  # fmt: skip

    def corrected(
        self, history: Sequence[str], dropped: Sequence[str]
    ) -> tuple[list[Motivation], list[str]]:
        """The profile after the user's corrections, and the history without the items that
        carry a dropped word (they supported that motivation; the ranker reads the rest)."""
        words = self.space.words
        columns = [words.index(w.lower()) for w in dropped if w.lower() in words]
        vectors = self.space.vectors
        kept = [i for i in history
                if not (vectors[self.dataset.index_of(i), columns] > 0).any()]  # fmt: skip
        return self.profile(kept, dropped), kept


def match(motivations: Sequence[Motivation], space: KeywordSpace, item: int) -> float:
    """How well an item's keywords match a profile: the cosine of its keyword vector and the
    profile's keyword weights (each motivation's keywords by its weight)."""
    index = {w: n for n, w in enumerate(space.words)}
    wanted = np.zeros(len(space.words), dtype=np.float32)
    for motivation in motivations:
        for word in motivation["keywords"]:
            wanted[index[word]] += motivation["weight"] * space.idf[index[word]]
    norm = float(np.linalg.norm(wanted))
    return float(space.vectors[item] @ wanted / norm) if norm > 0 else 0.0


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _kmeans(x: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Weighted spherical k-means [n] -> group per row; deterministic: the heaviest (most
    recent) row starts, then each next centre is the row least similar to the chosen ones."""
    chosen = [int(np.argmax(weights))]
    while len(chosen) < k:
        closest = (x @ x[chosen].T).max(axis=1)
        closest[chosen] = math.inf
        chosen.append(int(np.argmin(closest)))
    centres = x[chosen]
    groups = np.zeros(len(x), dtype=np.int64)
    for step in range(ITERATIONS):
        new = np.argmax(x @ centres.T, axis=1)
        if step and np.array_equal(new, groups):
            break
        groups = new
        for g in range(k):
            members = groups == g
            if members.any():
                centres[g] = _unit((x[members] * weights[members, None]).sum(axis=0))
    return groups
