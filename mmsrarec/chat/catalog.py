"""The catalog search of the chat: one Chroma entry per item, embedded from its title, text and
keywords, so "something tense in space" finds items by what they are about.

    index = CatalogIndex.build(client, dataset, keywords, ChromaEmbedding(encoder))
    index.search("tense space horror", k=5)  # -> list[Match], best first

The collection's metadata holds a fingerprint of every document and of the encoder, and a
`complete` flag written last: `build` reuses a complete collection with the same fingerprint
and otherwise rebuilds it (so new keywords or another encoder give a fresh index).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError

from mmsrarec.chat.state import Match
from mmsrarec.data import Dataset, Item
from mmsrarec.models import ChromaEmbedding

FORMAT_VERSION = 1
BATCH = 256


def item_document(item: Item, keywords: list[str] | None) -> str:
    """What is embedded for an item: its text (title, genres, ...) and its keywords."""
    text = item.text if item.title in item.text else f"{item.title}. {item.text}"
    return f"{text} Keywords: {', '.join(keywords)}." if keywords else text


def collection_name(dataset: Dataset) -> str:
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", dataset.name).strip("-_") or "dataset"
    return f"catalog-{slug[:48]}"


class CatalogIndex:
    """Implements `CatalogSearch` over a built Chroma collection."""

    def __init__(self, collection: Collection, dataset: Dataset, name: str = "") -> None:
        self.collection = collection
        self.dataset = dataset
        self.name = name  # the sentence encoder that embeds queries and items

    @classmethod
    def build(
        cls,
        client: ClientAPI,
        dataset: Dataset,
        keywords: Mapping[str, list[str]],
        embedding: ChromaEmbedding,
    ) -> CatalogIndex:
        """The index of `dataset`, reused when up to date, else (re)built.

        Args:
            client: A Chroma client (`PersistentClient` with telemetry off, or ephemeral).
            dataset: The catalog.
            keywords: Keywords per item id (items without any are embedded from their text).
            embedding: Always ours: Chroma's default would download a model.
        """
        name = collection_name(dataset)
        ids = [item.item_id for item in dataset.items]
        docs = [item_document(item, keywords.get(item.item_id)) for item in dataset.items]
        digest = hashlib.sha256(
            json.dumps([FORMAT_VERSION, embedding.get_config(), ids, docs]).encode()
        ).hexdigest()
        try:
            existing = client.get_collection(name, embedding_function=embedding)
            meta = existing.metadata or {}
            if meta.get("complete") is True and meta.get("fingerprint") == digest:
                return cls(existing, dataset, Path(embedding.get_config()["model"]).name)
            client.delete_collection(name)
        except NotFoundError:
            pass
        collection = client.create_collection(
            name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"fingerprint": digest, "complete": False},
            embedding_function=embedding,
        )
        for start in range(0, len(ids), BATCH):
            stop = start + BATCH
            collection.add(
                ids=ids[start:stop],
                documents=docs[start:stop],
                metadatas=[{"title": item.title} for item in dataset.items[start:stop]],
            )
        collection.modify(metadata={"fingerprint": digest, "complete": True})
        return cls(collection, dataset, Path(embedding.get_config()["model"]).name)

    def search(self, text: str, k: int, within: Sequence[str] | None = None) -> list[Match]:
        """The `k` items closest to `text` (cosine similarity), best first; only items in
        `within` when given (Chroma's `ids` filter)."""
        size = self.dataset.n_items if within is None else len(within)
        if not text.strip() or k < 1 or size == 0:
            return []
        found = self.collection.query(
            query_texts=[text],
            n_results=min(k, size),
            ids=None if within is None else list(within),
        )
        ids, distances = found["ids"][0], (found["distances"] or [[]])[0]
        return [
            Match(
                item_id=item_id,
                title=self.dataset.item(self.dataset.index_of(item_id)).title,
                similarity=round(1.0 - float(distance), 4),
            )
            for item_id, distance in zip(ids, distances, strict=True)
        ]


def vocabulary(dataset: Dataset, keywords: Mapping[str, list[str]]) -> frozenset[str]:
    """Words of the catalog's documents: a message word outside it (and outside the mood list)
    is not taken for a soft wish, so gibberish is not searched for."""
    words: set[str] = set()
    for item in dataset.items:
        document = item_document(item, keywords.get(item.item_id)).lower()
        words.update(re.findall(r"[a-z][a-z'-]+", document))
    return frozenset(words)
