"""`llm-i2i` (the seed's LLM-I2I idea): interactions synthesised for items that have none, from
the LLM's item-to-item similarities.

An item without an ID inherits the co-occurrence neighbourhood of the `borrow` items with an
ID that the LLM finds most similar (cosine of its mean-pooled hidden states over the item
texts): its column of the item-kNN similarity matrix becomes their columns' similarity-weighted
mean, as if its users had behaved like theirs. It is then scored like any item by item-kNN
(`itemknn.py`): the recency-weighted similarity to the user's recent items. Items with an ID
keep their own column.
"""

from __future__ import annotations

import numpy as np

from mmsrarec.data import Dataset
from mmsrarec.models.item_text import TextFeatures
from mmsrarec.recommenders.itemknn import ItemKNNRecommender

BORROW = 10


class LLMI2IRecommender(ItemKNNRecommender):
    """Item-kNN whose items without an ID borrow their text neighbours' similarities.

    Args:
        features: the items' LLM text features.
    """

    name = "llm-i2i"
    reads_text = True

    def __init__(self, features: TextFeatures, borrow: int = BORROW) -> None:
        super().__init__()
        self.features = features
        self.borrow = borrow

    def fit(self, dataset: Dataset, seed: int) -> None:
        super().fit(dataset, seed)
        if not dataset.cold or self.similarity is None:
            return
        text = np.asarray(self.features.catalog(dataset), dtype=np.float64)
        text = text - text.mean(0)
        text /= np.linalg.norm(text, axis=1, keepdims=True).clip(min=1e-12)
        new = np.array(sorted(dataset.cold))
        known = np.array([i for i in range(1, dataset.n_items + 1) if i not in dataset.cold])
        cosine = text[new - 1] @ text[known - 1].T  # [new, known]
        nearest = np.argsort(-cosine, axis=1)[:, : self.borrow]
        weights = np.clip(np.take_along_axis(cosine, nearest, axis=1), 0.0, None)
        weights /= weights.sum(1, keepdims=True).clip(min=1e-12)
        borrowed = np.einsum("nk,nki->ni", weights, self.similarity[known[nearest]])  # rows
        similarity = self.similarity.copy()
        similarity[:, new] = borrowed.T  # the new items' columns: what their neighbours get
        self.similarity = similarity.astype(np.float32)
