"""Typo-tolerant lexicon matching: a misspelt word ("horor", "thirller") to the lexicon word
it most likely means, with a confidence.

Distance is the optimal-string-alignment edit distance (insertions, deletions, substitutions
and swaps of two neighbouring letters, each 1). A word is corrected when it is not itself a
word the reader knows (`known`: the sentence encoder's whole-word vocabulary, filler, the
catalog's words), is at least `lexicon.MIN_TYPO_LENGTH` letters long, and exactly one lexicon
word lies within 1 edit (2 for words of 8 letters or more). Confidence = 1 - distance /
length of the lexicon word.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from mmsrarec.chat import lexicon as lx


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance between `a` and `b`; `limit + 1` once it exceeds
    `limit` (the caller only needs to know that)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before, row = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = ca != cb
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + cost)
            if before is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, row = row, current
    return row[-1]


@dataclass(frozen=True)
class Correction:
    """`word` as written, read as `target` with `confidence` in (0, 1]."""

    word: str
    target: str
    confidence: float


def correct(word: str, targets: Mapping[str, object], known: Collection[str]) -> Correction | None:
    """The lexicon word in `targets` that `word` misspells, or None (see the module
    docstring). `targets` maps each lexicon word to what it means: two nearest words that
    mean different things ("dramas", "dream") are no guess; two that mean the same are."""
    if len(word) < lx.MIN_TYPO_LENGTH or word in targets or word in known or not word.isalpha():
        return None
    limit = 2 if len(word) >= 8 else 1
    near = [
        (distance, target)
        for target in targets
        if len(target) >= lx.MIN_TYPO_LENGTH
        and (distance := edit_distance(word, target, limit)) <= limit
    ]
    if not near:
        return None
    near.sort()
    if any(d == near[0][0] and targets[t] != targets[near[0][1]] for d, t in near[1:]):
        return None  # two lexicon words as close that mean different things: no guess
    distance, target = near[0]
    return Correction(word, target, round(1 - distance / len(target), 3))
