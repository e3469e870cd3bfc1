"""Live data: feedback events, items added while serving, and published model versions.

The rows live in the recommendation graph's database (`mmsrarec.database`, store
`recommend`): the run dir's `graph.sqlite`, or the `mmsrarec_recommend` schema of
`database_url`, so every replica and the CLI see the same rows.

- Each row has a `seq`: 1, 2, 3, ... without gaps, in commit order. It is taken as
  `MAX(seq) + 1` inside the insert, and the primary key makes two writers that took the same
  number collide: one commits, the other inserts nothing and tries again. So a reader that
  has seen `seq <= n` never later finds a row below `n` (a plain sequence on PostgreSQL can
  commit 10 before 9), and "everything up to `n`" names one fixed set of rows (what a
  retrained model was trained on).
- A write may carry an idempotency key (unique per table): a retry with the same key and
  the same request gives back the first row and writes nothing; the same key with another
  request is refused (`IdempotencyConflict`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from mmsrarec.database import Tables
from mmsrarec.errors import DataError
from mmsrarec.storage import sha256_text

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS live_feedback (seq BIGINT PRIMARY KEY, user_id TEXT NOT NULL, "
    "item_id TEXT NOT NULL, occurred_at DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL, "
    "created_at DOUBLE PRECISION NOT NULL, idempotency_key TEXT UNIQUE, "
    "request_sha256 TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS live_feedback_by_user ON live_feedback (user_id, seq)",
    "CREATE TABLE IF NOT EXISTS live_items (seq BIGINT PRIMARY KEY, item_id TEXT NOT NULL "
    "UNIQUE, title TEXT NOT NULL, description TEXT NOT NULL, image TEXT, "
    "created_at DOUBLE PRECISION NOT NULL, idempotency_key TEXT UNIQUE, "
    "request_sha256 TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS model_versions (seq BIGINT PRIMARY KEY, scorer TEXT NOT NULL, "
    "path TEXT NOT NULL, feedback_seq BIGINT NOT NULL, items_seq BIGINT NOT NULL, "
    "created_at DOUBLE PRECISION NOT NULL, idempotency_key TEXT UNIQUE, "
    "request_sha256 TEXT NOT NULL)",
]
MAX_TRIES = 50  # writers racing for the same `seq`; each lost race means another row landed


class IdempotencyConflict(DataError):
    """An idempotency key was sent again with a different request."""


class ItemExists(DataError):
    """An item with this id is already in the catalogue."""


@dataclass(frozen=True)
class Feedback:
    """One interaction reported while serving."""

    seq: int
    user_id: str
    item_id: str
    timestamp: float
    kind: str


@dataclass(frozen=True)
class LiveItem:
    """An item added while serving. `image`: a file name under the live images folder."""

    seq: int
    item_id: str
    title: str
    description: str
    image: str | None


@dataclass(frozen=True)
class ModelVersion:
    """A retrained model, published once complete: trained on the prepared data plus the
    feedback rows up to `feedback_seq` and the live items up to `items_seq`."""

    seq: int
    scorer: str
    path: str
    feedback_seq: int
    items_seq: int

    @property
    def label(self) -> str:
        return f"v{self.seq}"


@dataclass(frozen=True)
class Written:
    """What a write stored (or, on a replay, had stored) and whether it was a replay."""

    row: Any
    replayed: bool


class LiveStore:
    """Feedback, live items and model versions in `tables` (see the module docstring)."""

    def __init__(self, tables: Tables, clock: Callable[[], float] = time.time) -> None:
        self.tables = tables
        self.tables.setup(SCHEMA)
        self.clock = clock

    # ----- writes ------------------------------------------------------------------------

    def add_feedback(
        self, user_id: str, item_id: str, timestamp: float, kind: str, key: str | None = None
    ) -> Written:
        """Store one event (its `seq` is new), or return the row of an earlier `key`."""
        request = {"user_id": user_id, "item_id": item_id, "timestamp": timestamp, "kind": kind}
        columns = ("user_id", "item_id", "occurred_at", "kind")
        seq, replayed = self._insert(
            "live_feedback", columns, tuple(request.values()), request, key
        )
        return Written(self._feedback_row(seq), replayed)

    def add_item(
        self,
        item_id: str,
        title: str,
        description: str,
        image: str | None,
        key: str | None = None,
        request: dict[str, Any] | None = None,
    ) -> Written:
        """Store one item, or return the row of an earlier `key`.

        Args:
            request: What identifies the request for the idempotency check (default: the
                stored fields); a generated `item_id` must not be part of it.

        Raises:
            ItemExists: `item_id` was added before (under another key or none).
            IdempotencyConflict: `key` was used for another request.
        """
        fields = {"item_id": item_id, "title": title, "description": description, "image": image}
        seq, replayed = self._insert(
            "live_items", tuple(fields), tuple(fields.values()), request or fields, key
        )
        if seq is None:
            raise ItemExists(f"item `{item_id}` already exists: give another `item_id`")
        return Written(self._item_row(seq), replayed)

    def publish_version(
        self, scorer: str, path: str, feedback_seq: int, items_seq: int
    ) -> ModelVersion:
        """Record a complete model directory as the newest version of `scorer` (once per
        path: publishing the same path again returns the first row)."""
        values = (scorer, path, feedback_seq, items_seq)
        columns = ("scorer", "path", "feedback_seq", "items_seq")
        seq, _ = self._insert(
            "model_versions",
            columns,
            values,
            dict(zip(columns, values, strict=True)),
            key=f"path:{path}",
        )
        return self._version_row(seq)

    def _insert(
        self,
        table: str,
        columns: tuple[str, ...],
        values: tuple[Any, ...],
        request: dict[str, Any],
        key: str | None,
    ) -> tuple[int | None, bool]:
        """`(seq, replayed)`; seq None when another unique column (not the key) collided."""
        digest = sha256_text(json.dumps(request, sort_keys=True, ensure_ascii=False))
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        sql = (
            f"INSERT INTO {table} (seq, {names}, created_at, idempotency_key, request_sha256) "
            f"SELECT COALESCE(MAX(seq), 0) + 1, {marks}, ?, ?, ? FROM {table} WHERE true "
            "ON CONFLICT DO NOTHING RETURNING seq"
        )  # `WHERE true`: SQLite needs it to parse an upsert after a SELECT
        for _ in range(MAX_TRIES):
            rows = self.tables.run(sql, (*values, self.clock(), key, digest))
            if rows:
                return int(rows[0][0]), False
            if key is not None:
                earlier = self.tables.run(
                    f"SELECT seq, request_sha256 FROM {table} WHERE idempotency_key = ?", (key,)
                )
                if earlier:
                    if earlier[0][1] != digest:
                        raise IdempotencyConflict(
                            "this `Idempotency-Key` was already used for a different request: "
                            "use a new key for a new request"
                        )
                    return int(earlier[0][0]), True
            if table == "live_items" and self.has_item(values[0]):
                return None, False
            # otherwise another writer took this seq first: take the next one
        raise RuntimeError(f"no free `seq` in `{table}` after {MAX_TRIES} tries")

    # ----- reads -------------------------------------------------------------------------

    def feedback_of(self, user_id: str) -> list[Feedback]:
        """The user's events in their order: by timestamp, then by arrival."""
        rows = self.tables.run(
            f"SELECT {_FEEDBACK} FROM live_feedback WHERE user_id = ? ORDER BY occurred_at, seq",
            (user_id,),
        )
        return [Feedback(*row) for row in rows]

    def feedback(self, up_to: int | None = None) -> list[Feedback]:
        """Every event with `seq <= up_to` (all without it), in `seq` order."""
        rows = self.tables.run(
            f"SELECT {_FEEDBACK} FROM live_feedback WHERE seq <= ? ORDER BY seq",
            (up_to if up_to is not None else 2**62,),
        )
        return [Feedback(*row) for row in rows]

    def items_after(self, seq: int) -> list[LiveItem]:
        """Live items with `seq > seq`, in `seq` order (the catalogue appends them so)."""
        rows = self.tables.run(f"SELECT {_ITEM} FROM live_items WHERE seq > ? ORDER BY seq", (seq,))
        return [LiveItem(*row) for row in rows]

    def has_item(self, item_id: str) -> bool:
        return bool(self.tables.run("SELECT 1 FROM live_items WHERE item_id = ?", (item_id,)))

    def last_seq(self, table: str) -> int:
        """The newest `seq` of `live_feedback`, `live_items` or `model_versions` (0: none)."""
        if table not in ("live_feedback", "live_items", "model_versions"):
            raise ValueError(f"no table `{table}`")
        rows = self.tables.run(f"SELECT COALESCE(MAX(seq), 0) FROM {table}")
        return int(rows[0][0])

    def latest_version(self, scorer: str) -> ModelVersion | None:
        """The newest published version of `scorer`, or None."""
        rows = self.tables.run(
            f"SELECT {_VERSION} FROM model_versions WHERE scorer = ? ORDER BY seq DESC LIMIT 1",
            (scorer,),
        )
        return ModelVersion(*rows[0]) if rows else None

    def _feedback_row(self, seq: int) -> Feedback:
        (row,) = self.tables.run(f"SELECT {_FEEDBACK} FROM live_feedback WHERE seq = ?", (seq,))
        return Feedback(*row)

    def _item_row(self, seq: int) -> LiveItem:
        (row,) = self.tables.run(f"SELECT {_ITEM} FROM live_items WHERE seq = ?", (seq,))
        return LiveItem(*row)

    def _version_row(self, seq: int) -> ModelVersion:
        (row,) = self.tables.run(f"SELECT {_VERSION} FROM model_versions WHERE seq = ?", (seq,))
        return ModelVersion(*row)


_FEEDBACK = "seq, user_id, item_id, occurred_at, kind"
_ITEM = "seq, item_id, title, description, image"
_VERSION = "seq, scorer, path, feedback_seq, items_seq"


def as_json(row: Feedback | LiveItem | ModelVersion) -> dict[str, Any]:
    """A stored row as the API shows it."""
    return asdict(row)
