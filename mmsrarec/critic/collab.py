"""What an item's audience shares, from training interactions only: the targets of `R_collab`.

`R_collab` is ours, not the MMSRARec paper's. On ML-100K an item's description is its title,
year and genres, so R_info and R_recon are maximised by copying it; R_collab asks instead
whether the keywords describe what the item has in common with the items its audience also
chose. For item `i` with keywords `k`:

    N(i)      = the `n_neighbours` items j != i with the largest co-occurrence cosine
                c_ij / sqrt(n_i * n_j), where c_ij counts training users with both items
                and n_i the training users with i (training sequences only);
    C(i)      = `n_contrast` random items outside N(i) and i (seeded per item);
    r_collab  = cos(phi(k), mean phi(N(i))) - cos(phi(k), mean phi(C(i)))

with phi the sentence encoder of R_info over the items' own texts, and each mean rescaled to
unit length. 0 means "no closer to the co-chosen items than to random ones". Items that no
training user chose have no neighbours: their reward is 0.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mmsrarec.data import Dataset


class TextEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class CollabTargets:
    """Per item id: the co-chosen items' texts and random contrast texts (see module doc).

    Centroids are encoded on first use per (item, encoder) and kept.
    """

    neighbours: Mapping[str, list[str]]  # item id -> texts of N(i)
    contrast: Mapping[str, list[str]]  # item id -> texts of C(i)
    _centroids: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def from_dataset(
        cls, dataset: Dataset, n_neighbours: int = 10, n_contrast: int = 10, seed: int = 0
    ) -> CollabTargets:
        """Targets of every item that some training user chose (training sequences only)."""
        n = dataset.n_items
        users = np.zeros((len(dataset.sequences), n + 1), dtype=np.float32)  # [users, items+1]
        for row, sequence in enumerate(dataset.train_sequences().values()):
            users[row, sequence] = 1.0
        counts = users.sum(0)  # n_i
        cooccur = users.T @ users  # c_ij [items+1, items+1]
        norm = np.sqrt(np.outer(counts, counts))
        cosine = np.divide(cooccur, norm, out=np.zeros_like(cooccur), where=norm > 0)
        np.fill_diagonal(cosine, 0.0)
        texts = [""] + [item.text for item in dataset.items]
        neighbours: dict[str, list[str]] = {}
        contrast: dict[str, list[str]] = {}
        for index in range(1, n + 1):
            if counts[index] == 0:
                continue
            ranked = np.argsort(-cosine[index], kind="stable")[:n_neighbours]
            near = [int(j) for j in ranked if cosine[index, j] > 0]
            if not near:
                continue
            item_id = dataset.items[index - 1].item_id
            excluded = set(near) | {index}
            pool = [j for j in range(1, n + 1) if j not in excluded]
            rng = random.Random(f"{seed}:{item_id}")
            neighbours[item_id] = [texts[j] for j in near]
            contrast[item_id] = [texts[j] for j in rng.sample(pool, min(n_contrast, len(pool)))]
        return cls(neighbours, contrast)

    def centroids(self, encoder: TextEncoder, item_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(unit mean of phi(N(i)), unit mean of phi(C(i))), or None without neighbours."""
        if item_id not in self.neighbours:
            return None
        key = (id(encoder), item_id)
        if key not in self._centroids:
            near, far = self.neighbours[item_id], self.contrast[item_id]
            vectors = encoder.encode(list(near) + list(far))
            self._centroids[key] = (_unit_mean(vectors[: len(near)]),
                                    _unit_mean(vectors[len(near) :]))  # fmt: skip
        return self._centroids[key]


def _unit_mean(vectors: np.ndarray) -> np.ndarray:
    if len(vectors) == 0:
        return np.zeros(vectors.shape[1], dtype=np.float32)
    mean = vectors.mean(0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def collab_values(
    encoder: TextEncoder, targets: CollabTargets, joined: Sequence[str], item_ids: Sequence[str]
) -> list[float]:
    """`r_collab` of each keyword string `joined[r]` for item `item_ids[r]` ("" -> 0)."""
    rewards = [0.0] * len(joined)
    pairs = [(r, targets.centroids(encoder, str(item_ids[r]))) for r in range(len(joined))]
    rows = [(r, c) for r, c in pairs if c is not None and joined[r]]
    if rows:
        keys = encoder.encode([joined[r] for r, _ in rows])  # [rows, dim], unit length
        for (r, (near, far)), key in zip(rows, keys, strict=True):
            rewards[r] = float(key @ near - key @ far)
    return rewards
