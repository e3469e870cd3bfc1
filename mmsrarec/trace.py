"""Tamper-evident traces: each node appends a record, hash-chained to the previous one.

`hash = sha256(prev_hash + canonical JSON of the record without its hashes)`. Changing any
byte of any record, reordering or deleting records breaks the chain from there on.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict  # pydantic builds JSON schemas from it on 3.11

from mmsrarec.errors import DataError

GENESIS = "0" * 64


class TraceRecord(TypedDict):
    """One node run."""

    node: str
    started_at: float  # unix time
    seconds: float
    model: str | None
    inputs: dict[str, Any]  # ids and settings the node read
    outputs: dict[str, Any]  # what it produced (ids, keywords, scores)
    prev_hash: str
    hash: str


def record_hash(record: Mapping[str, Any], prev_hash: str) -> str:
    body = {key: value for key, value in record.items() if key not in ("hash", "prev_hash")}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def chain_trace(left: list[TraceRecord], right: list[TraceRecord]) -> list[TraceRecord]:
    """Reducer: append `right`'s records, chaining each to the last hash."""
    chained = list(left)
    for record in right:
        prev = chained[-1]["hash"] if chained else GENESIS
        chained.append({**record, "prev_hash": prev, "hash": record_hash(record, prev)})
    return chained


def verify_trace(records: Sequence[Mapping[str, Any]]) -> int | None:
    """Index of the first record whose hash does not verify, or None when all do."""
    prev = GENESIS
    for index, record in enumerate(records):
        if record.get("prev_hash") != prev or record.get("hash") != record_hash(record, prev):
            return index
        prev = record["hash"]
    return None


@contextmanager
def traced(node: str, model: str | None = None, **inputs: Any):
    """Time a node's work; yields a dict to fill with outputs, then holds the record at
    `["record"]`. Usage: `with traced("critic", round=2) as t: ...; t["outputs"] = {...}`."""
    started = time.time()
    holder: dict[str, Any] = {"outputs": {}, "model": model}
    yield holder
    holder["record"] = TraceRecord(
        node=node,
        started_at=round(started, 3),
        seconds=round(time.time() - started, 4),
        model=holder["model"],
        inputs=inputs,
        outputs=holder["outputs"],
        prev_hash="",
        hash="",
    )


def read_trace_file(path: Path) -> list[dict[str, Any]]:
    """The records of a file written by `mmsrarec trace export`.

    Raises:
        DataError: the file is missing, not JSON, or not a trace export.
    """
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"trace file `{path}` does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"trace file `{path}` is not valid JSON ({exc})") from None
    records = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"trace file `{path}` has no `records` list: export it again")
    return records
