"""Tamper-evident traces: each node appends a record, hash-chained to the previous one.

`hash = sha256(prev_hash + canonical JSON of the record without its hashes)`. Changing any
byte of any record, reordering or deleting records breaks the chain from there on.

An exported trace (`seal_trace`) is chained again with HMAC-SHA256 under the data dir's key,
so that only this installation can produce it, and ends in a head record: the number of
records, the last keyed hash, and the thread id, each covered by a keyed hash. Deleting
records at the end, changing the thread id or recomputing the chain without the key are
then caught too (`check_sealed`).
"""

from __future__ import annotations

import hashlib
import hmac
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


def read_trace_file(path: Path) -> dict[str, Any]:
    """The contents of a file written by `mmsrarec trace export` (a `records` list).

    Raises:
        DataError: the file is missing, not JSON, or not a trace export.
    """
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"trace file `{path}` does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"trace file `{path}` is not valid JSON ({exc})") from None
    except (ValueError, RecursionError):  # an integer of > 4300 digits, deep nesting
        raise DataError(f"trace file `{path}` is not a trace: too large or too deep") from None
    except IsADirectoryError:
        raise DataError(f"`{path}` is a folder: give a file written by `trace export`") from None
    except OSError as exc:
        raise DataError(f"cannot read trace file `{path}`: {exc.strerror}") from None
    records = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"trace file `{path}` has no `records` list: export it again")
    return payload


# --- Keyed exports --------------------------------------------------------------------------


def _canonical(value: Any) -> bytes:
    # ASCII escapes: any string, lone surrogates included, has one encoding
    return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()


def _mac(key: bytes, *parts: Any) -> str:
    return hmac.new(key, _canonical(list(parts)), hashlib.sha256).hexdigest()


def _same(given: Any, expected: str) -> bool:
    """Constant-time comparison of a keyed hash read from a file (any JSON value)."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def _record_mac(key: bytes, record: Mapping[str, Any]) -> str:
    body = {name: value for name, value in record.items() if name != "mac"}
    return _mac(key, "record", body)


def _label(index: int, record: Mapping[str, Any], name: str) -> str:
    return f"record {index} (`{_short(record.get('node', '?'))}`) of `{name}`"


def _short(value: Any) -> str:
    """Text read from the file, cut for a one-line message."""
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _unkeyed_chain_holds(record: Mapping[str, Any]) -> bool:
    body = {name: value for name, value in record.items() if name not in ("mac", "prev_mac")}
    try:
        return body.get("hash") == record_hash(body, str(body.get("prev_hash", "")))
    except (TypeError, ValueError, UnicodeError):
        return False


def seal_trace(records: Sequence[Mapping[str, Any]], thread_id: str, key: bytes) -> dict:
    """The export of a thread's trace: each record chained with HMAC-SHA256 under `key`
    (`prev_mac`, `mac`), then a head with the count, the last `mac` and the thread id."""
    sealed: list[dict[str, Any]] = []
    prev = GENESIS
    for record in records:
        entry = {**record, "prev_mac": prev}
        entry["mac"] = prev = _record_mac(key, entry)
        sealed.append(entry)
    head = {
        "count": len(sealed),
        "last": prev,
        "thread_id": thread_id,
        "mac": _mac(key, "head", len(sealed), prev),
        "thread_mac": _mac(key, "thread", thread_id, prev),
    }
    return {"thread_id": thread_id, "records": sealed, "head": head}


def _read_head(payload: Mapping[str, Any], name: str) -> dict[str, Any]:
    head = payload.get("head")
    if not isinstance(head, dict):
        raise DataError(
            f"`{name}` has no head record: truncated, or exported by an older version "
            "(export it again)"
        )
    types = {"count": int, "last": str, "thread_id": str, "mac": str, "thread_mac": str}
    for field, kind in types.items():
        if not isinstance(head.get(field), kind) or isinstance(head.get(field), bool):
            raise DataError(f"head record of `{name}` has no valid `{field}`: tampered")
    return head


def check_sealed(payload: Mapping[str, Any], key: bytes, name: str = "trace") -> int:
    """Verify an export from `seal_trace`; the number of records when it verifies.

    Raises:
        DataError: one line naming what was done to the trace: a record edited, a chain
            recomputed without the key (or made with another data dir's key), records
            reordered or removed, the head edited, or the thread id changed.
    """
    records = payload.get("records")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"`{name}` has no `records` list: export it again")
    head = _read_head(payload, name)
    macs = [record.get("mac") for record in records]
    for index, record in enumerate(records):
        label = _label(index, record, name)
        if not _same(macs[index], _record_mac(key, record)):
            if _unkeyed_chain_holds(record):
                raise DataError(
                    f"{label} is forged: its hashes were recomputed without this data dir's "
                    "key (or it was exported elsewhere)"
                )
            raise DataError(f"{label} fails verification: tampered (edited)")
    expected = GENESIS
    for index, record in enumerate(records):
        if record.get("prev_mac") != expected:
            label = _label(index, record, name)
            if record.get("prev_mac") in macs or expected in macs[index:]:
                raise DataError(f"{label} is out of place: records were reordered")
            raise DataError(f"`{name}` is truncated: records are missing before {label}")
        expected = str(macs[index])
    if payload.get("thread_id") != head["thread_id"]:
        raise DataError(
            f"thread id changed: `{name}` names thread `{_short(payload.get('thread_id'))}`, "
            f"its head `{_short(head['thread_id'])}`"
        )
    if not _same(head["mac"], _mac(key, "head", head["count"], head["last"])):
        raise DataError(f"head record of `{name}` was edited: its count or last hash is forged")
    thread_mac = _mac(key, "thread", head["thread_id"], head["last"])
    if not _same(head["thread_mac"], thread_mac):
        raise DataError(
            f"thread id changed: `{name}` was not exported for thread `{_short(head['thread_id'])}`"
        )
    if len(records) < head["count"]:
        raise DataError(
            f"`{name}` is truncated: {len(records)} of {head['count']} records "
            f"(the last {head['count'] - len(records)} removed)"
        )
    if len(records) > head["count"] or expected != head["last"]:
        raise DataError(f"`{name}` has records after the last one its head names: tampered")
    return len(records)
