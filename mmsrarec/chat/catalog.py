"""The catalog search of the chat: one Chroma entry per item, embedded from its title, text and
keywords, so "something tense in space" finds items by what they are about.

    index = CatalogIndex.build(client, dataset, keywords, ChromaEmbedding(encoder))
    index.search("tense space horror", k=5)  # -> list[Match], best first

One stable collection per dataset and encoder, updated in place and never deleted: each
entry's metadata holds a digest of its document, and `build` upserts only the entries whose
document changed (new keywords) or is missing (a killed build), and deletes entries of items
no longer in the catalog. So another process that starts with more keywords updates the
index under a running server instead of replacing it (the server's collection handle stays
valid), and two processes building at once write the same rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from mmsrarec.chat.state import Match
from mmsrarec.data import Dataset, Item
from mmsrarec.models import ChromaEmbedding

FORMAT_VERSION = 1
BATCH = 256


def item_document(item: Item, keywords: list[str] | None) -> str:
    """What is embedded for an item: its text (title, genres, ...) and its keywords."""
    text = item.text if item.title in item.text else f"{item.title}. {item.text}"
    return f"{text} Keywords: {', '.join(keywords)}." if keywords else text


def document_digest(document: str) -> str:
    """What an entry's `doc` metadata holds: changes with the document or the index format."""
    return hashlib.sha256(f"{FORMAT_VERSION}\n{document}".encode()).hexdigest()[:16]


def collection_name(dataset: Dataset, embedding: ChromaEmbedding) -> str:
    """`catalog-<dataset>-<encoder digest>` (at most 61 characters, as Chroma allows): another
    encoder gets its own collection, since its vectors cannot share one."""
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", dataset.name).strip("-_") or "dataset"
    encoder = json.dumps(embedding.get_config(), sort_keys=True).encode()
    return f"catalog-{slug[:40]}-{hashlib.sha256(encoder).hexdigest()[:12]}"


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
        """The index of `dataset`: stored entries whose document is unchanged are kept, the
        rest upserted (see the module docstring).

        Args:
            client: A Chroma client (`PersistentClient` with telemetry off, or ephemeral).
            dataset: The catalog.
            keywords: Keywords per item id (items without any are embedded from their text).
            embedding: Always ours: Chroma's default would download a model.
        """
        collection = client.get_or_create_collection(
            collection_name(dataset, embedding),
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=embedding,
        )
        stored = collection.get(include=["metadatas"])
        have = {
            item_id: (meta or {}).get("doc")
            for item_id, meta in zip(stored["ids"], stored["metadatas"] or [], strict=True)
        }
        wanted = [
            (item, document, document_digest(document))
            for item in dataset.items
            for document in [item_document(item, keywords.get(item.item_id))]
        ]
        stale = [row for row in wanted if have.get(row[0].item_id) != row[2]]
        for start in range(0, len(stale), BATCH):
            rows = stale[start : start + BATCH]
            collection.upsert(
                ids=[item.item_id for item, _, _ in rows],
                documents=[document for _, document, _ in rows],
                metadatas=[{"title": item.title, "doc": digest} for item, _, digest in rows],
            )
        gone = sorted(set(have) - {item.item_id for item in dataset.items})
        if gone:
            collection.delete(ids=gone)
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
