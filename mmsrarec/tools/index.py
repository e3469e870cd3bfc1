"""The collaborative knowledge base: training users' SASRec states in a Chroma collection.

One entry per training user `u` whose training sequence has at least 2 items:

    id        = u
    embedding = SASRec final-position state after reading train_sequence(u)[:-1]
    metadata  = {"user_id": u, "next_item_id": raw id of train_sequence(u)[-1]}

so each entry pairs "a history" with "what that user chose next", and no validation or test
interaction of anyone ever enters it (METHOD.md, section 2). The model is any
`StateEncoder` (`mmsrarec.types`); in practice a fitted `SASRecRecommender`.

The collection is named after the dataset and the SASRec seed; its metadata holds a
fingerprint (knowledge-base format, dataset name, catalog, training sequences, SASRec weights)
and a `complete` flag written last. `build` does nothing when both match, and otherwise
deletes and rebuilds the collection, so a killed build (flag still false) is redone on the
next call. Vectors are always ours: Chroma is never given an embedding function, so it never
loads (or downloads) its default model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from mmsrarec.data import Dataset
from mmsrarec.errors import ConfigError, NotPreparedError
from mmsrarec.types import StateEncoder

logger = logging.getLogger(__name__)

KB_FORMAT_VERSION = 1
DEFAULT_BATCH_SIZE = 256


@dataclass(frozen=True)
class BuildReport:
    """What `CollaborativeIndex.build` did."""

    collection: str  # Chroma collection name
    fingerprint: str  # sha256 the collection was built for
    entries: int  # knowledge-base entries in the collection
    rebuilt: bool  # False when a complete collection with this fingerprint was reused
    seconds: float


def parse_server_url(url: str) -> tuple[str, int, bool]:
    """`(host, port, ssl)` of a Chroma server URL such as `http://localhost:8000`.

    The port defaults to 443 for https and 8000 (Chroma's default) for http.

    Raises:
        ConfigError: The URL has no http(s) scheme or no host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"chroma `server_url` `{url}` is not an http(s) URL with a host; "
            "write it like `http://localhost:8000`"
        )
    ssl = parts.scheme == "https"
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"chroma `server_url` `{url}` has an invalid port") from None
    return parts.hostname, port if port is not None else (443 if ssl else 8000), ssl


def kb_entries(dataset: Dataset) -> tuple[list[str], list[list[int]], list[str]]:
    """The knowledge base's rows: user ids, histories (item indices), next raw item ids.

    Only training sequences are read; users with fewer than 2 training items are left out.
    """
    users, histories, next_items = [], [], []
    for user, train in dataset.train_sequences().items():
        if len(train) >= 2:
            users.append(user)
            histories.append(train[:-1])
            next_items.append(dataset.item(train[-1]).item_id)
    return users, histories, next_items


def kb_fingerprint(dataset: Dataset, sasrec: StateEncoder) -> str:
    """sha256 over the knowledge-base format, the dataset's catalog and training sequences,
    the SASRec config and its weights (so a retrained model gets a new knowledge base)."""
    if sasrec.model is None:
        raise NotPreparedError("SASRec has no weights: call `fit` or `load_sasrec` first")
    weights = hashlib.sha256()
    for name, tensor in sorted(sasrec.model.state_dict().items()):
        weights.update(name.encode())
        weights.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    train = json.dumps(dataset.train_sequences(), sort_keys=True, separators=(",", ":"))
    catalog = json.dumps([item.item_id for item in dataset.items], separators=(",", ":"))
    parts = {
        "format_version": KB_FORMAT_VERSION,
        "dataset": dataset.name,
        "catalog": hashlib.sha256(catalog.encode()).hexdigest(),
        "train": hashlib.sha256(train.encode()).hexdigest(),
        "sasrec_config": sasrec.config.digest(),
        "sasrec_weights": weights.hexdigest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def collection_name(dataset: Dataset, sasrec: StateEncoder) -> str:
    """`users-<dataset>-seed<k>` (`users-<dataset>-new-seed<k>` on the new-releases split, so
    that the two splits never share a knowledge base), reduced to the characters Chroma
    allows (at most 63)."""
    seed = sasrec.meta.get("seed", "x")
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", dataset.name).strip("-_") or "dataset"
    split = "-new" if dataset.cold else ""
    return f"users-{slug[:40]}{split}-seed{seed}"


def chroma_client(path: Path | None, server_url: str | None = None) -> ClientAPI:
    """A Chroma client with telemetry off: the server at `server_url` when given, else an
    embedded `PersistentClient` in the folder `path`."""
    settings = ChromaSettings(anonymized_telemetry=False)
    if server_url is not None:
        host, port, ssl = parse_server_url(server_url)
        try:
            return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
        except ValueError:  # chromadb's "Could not connect to a Chroma server"
            raise ConfigError(
                f"no Chroma server answers at `chroma_url` {server_url}: start one "
                "(`chroma run --path DIR --host HOST --port PORT`) or unset `chroma_url` "
                "for the embedded store"
            ) from None
    if path is None:
        raise ConfigError("give the index a `path`, a chroma `server_url` or a `client`")
    return chromadb.PersistentClient(path=str(path), settings=settings)


class CollaborativeIndex:
    """A Chroma store of knowledge-base collections (one per dataset and SASRec seed).

    Args:
        path: Folder of an embedded `PersistentClient`, usually `<data dir>/<dataset>/chroma`
            (see `for_dataset_dir`). Ignored when `server_url` or `client` is given.
        server_url: A running Chroma server (`http://host:port`) instead of the embedded one.
        client: A ready Chroma client (tests, in-memory `EphemeralClient`).
        batch_size: Users embedded and added per step while building.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        server_url: str | None = None,
        client: ClientAPI | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"`batch_size` must be at least 1, got {batch_size}")
        self.client = client if client is not None else chroma_client(path, server_url)
        self.batch_size = batch_size

    @classmethod
    def for_dataset_dir(
        cls, dataset_dir: Path, server_url: str | None = None
    ) -> CollaborativeIndex:
        """The default store: `<dataset_dir>/chroma` (e.g. `Settings().dataset_dir`)."""
        return cls(dataset_dir / "chroma", server_url=server_url)

    def build(self, dataset: Dataset, sasrec: StateEncoder) -> BuildReport:
        """Make sure a complete collection for this dataset and SASRec exists; build if not.

        Returns:
            What was done; `rebuilt` is False when the stored collection was reused.
        """
        started = time.perf_counter()
        name, fingerprint = collection_name(dataset, sasrec), kb_fingerprint(dataset, sasrec)
        existing = self._find(name)
        if existing is not None and _is_complete(existing, fingerprint):
            return BuildReport(name, fingerprint, existing.count(), False, _since(started))
        if existing is not None:
            logger.info("knowledge base %s is stale or incomplete: rebuilding", name)
            self.client.delete_collection(name)
        collection = self.client.create_collection(
            name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=_metadata(dataset, fingerprint, complete=False),
            embedding_function=None,
        )
        users, histories, next_items = kb_entries(dataset)
        step = min(self.batch_size, self.client.get_max_batch_size())
        for start in range(0, len(users), step):
            stop = start + step
            vectors = normalize(sasrec.embed_histories(histories[start:stop]))  # [b, hidden]
            collection.add(
                ids=users[start:stop],
                embeddings=vectors,
                metadatas=[
                    {"user_id": user, "next_item_id": item}
                    for user, item in zip(users[start:stop], next_items[start:stop], strict=True)
                ],
            )
        # Written last: its presence means every batch above is in.
        collection.modify(metadata=_metadata(dataset, fingerprint, complete=True))
        logger.info("knowledge base %s: %d training users", name, len(users))
        return BuildReport(name, fingerprint, len(users), True, _since(started))

    def open(self, dataset: Dataset, sasrec: StateEncoder) -> Collection:
        """The complete collection built for this dataset and SASRec.

        Raises:
            NotPreparedError: It was never built, was interrupted, or was built for other
                data or another model.
        """
        name = collection_name(dataset, sasrec)
        collection = self._find(name)
        if collection is None or not _is_complete(collection, kb_fingerprint(dataset, sasrec)):
            raise NotPreparedError(
                f"the similar-users knowledge base `{name}` is missing, incomplete or built for "
                "another model: call `CollaborativeIndex.build(dataset, sasrec)` first"
            )
        return collection

    def _find(self, name: str) -> Collection | None:
        try:
            return self.client.get_collection(name, embedding_function=None)
        except NotFoundError:
            return None


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero): float32 [n, d]."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _metadata(dataset: Dataset, fingerprint: str, complete: bool) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "complete": complete,
        "dataset": dataset.name,
        "format_version": KB_FORMAT_VERSION,
    }


def _is_complete(collection: Collection, fingerprint: str) -> bool:
    meta = collection.metadata or {}
    return meta.get("complete") is True and meta.get("fingerprint") == fingerprint


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)
