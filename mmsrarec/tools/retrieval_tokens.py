"""Retrieval tokens for a recommender's input: what the k most similar training users chose
next (their SASRec states in the Chroma knowledge base, `tools/index.py`), never the user's own."""

from __future__ import annotations

from collections.abc import Sequence

from mmsrarec.config import Settings
from mmsrarec.data import Dataset
from mmsrarec.tools.index import CollaborativeIndex, normalize
from mmsrarec.types import StateEncoder

BATCH = 512


class RetrievalTokens:
    """Next items of the k most similar training users, as item indices."""

    def __init__(self, settings: Settings, dataset: Dataset, encoder: StateEncoder, k: int):
        index = CollaborativeIndex.for_dataset_dir(settings.dataset_dir, settings.chroma_url)
        index.build(dataset, encoder)
        self.collection = index.open(dataset, encoder)
        self.dataset, self.encoder, self.k = dataset, encoder, k

    def tokens(self, prefixes: Sequence[tuple[str, Sequence[int]]]) -> list[list[int]]:
        """For each (user, item indices known so far): up to k item indices."""
        out: list[list[int]] = []
        for start in range(0, len(prefixes), BATCH):
            chunk = prefixes[start : start + BATCH]
            states = normalize(self.encoder.embed_histories([list(p) or [0] for _, p in chunk]))
            found = self.collection.query(
                query_embeddings=states, n_results=self.k + 1, include=["metadatas"]
            )
            for (user, _), metas in zip(chunk, found["metadatas"], strict=True):
                others = [m for m in metas if str(m["user_id"]) != user][: self.k]
                out.append([self.dataset.index_of(str(m["next_item_id"])) for m in others])
        return out
