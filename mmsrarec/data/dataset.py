"""A prepared dataset in memory: catalog, chronological sequences, split and frozen negatives.

Items are numbered 1..n_items in catalog order (0 is padding for sequence models).
Split (chronological leave-one-out, per user with at least 3 interactions):
last item = test target, second-last = validation target, the rest = training.
Users with fewer than 3 interactions are training-only.

Items in `cold` (the new-releases split, `data/coldstart.py`) have no interaction before the
test in any form: they are removed from the training sequences (so from every count, index
and training window), and a validation position whose target is cold is left out of every
fit and choice (`valid_users`). They stay in the catalog and in the users' histories at
validation and test time, with their text and no trained ID.
"""

from __future__ import annotations

import hashlib
import json
import re
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmsrarec.data.packed import PackedLists
from mmsrarec.errors import DataError, NotPreparedError
from mmsrarec.storage import sha256_file

Stage = Literal["valid", "test"]
STAGES: tuple[Stage, ...] = ("valid", "test")
MIN_EVAL_LENGTH = 3
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Item:
    """One catalog entry. `text` is what an LLM reads; `image` an absolute path or None."""

    item_id: str
    title: str
    text: str
    image: str | None = None
    fields: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Dataset:
    """Prepared data. Sequences and negatives hold item indices (1-based).

    `load_dataset` gives them as `PackedLists` (flat arrays: read-only); plain dicts of lists
    work the same (tests build small datasets so).
    """

    name: str
    items: list[Item]
    sequences: Mapping[str, list[int]]
    negatives: dict[Stage, Mapping[str, list[int]]]
    timestamps: Mapping[str, list[float]] = field(default_factory=dict, repr=False)
    cold: frozenset[int] = frozenset()
    cold_rule: str = ""  # the rule that chose `cold` (`data/coldstart.py`), for the record
    item_kind: str = "item"  # what one item is, in words ("movie" on ML-100K)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {item.item_id: index for index, item in enumerate(self.items, start=1)}

    def item(self, index: int) -> Item:
        return self.items[index - 1]

    def index_of(self, item_id: str) -> int:
        try:
            return self.item_index[item_id]
        except KeyError:
            raise DataError(f"unknown item id `{item_id}` in dataset `{self.name}`") from None

    def by_id(self, item_id: str) -> Item:
        """The item with raw id `item_id` (DataError when the catalog lacks it)."""
        return self.item(self.index_of(item_id))

    @cached_property
    def users(self) -> list[str]:
        return list(self.sequences)

    @cached_property
    def eval_users(self) -> list[str]:
        return [u for u, seq in self.sequences.items() if len(seq) >= MIN_EVAL_LENGTH]

    @cached_property
    def valid_users(self) -> list[str]:
        """Evaluable users whose validation target may be used by fits and choices: all of
        them, except those whose validation target is cold."""
        if not self.cold:
            return self.eval_users
        return [u for u in self.eval_users if self.target(u, "valid") not in self.cold]

    @cached_property
    def split_tag(self) -> str:
        """`""`, or `-cold<8 hex>` naming the held-out items: a model folder's suffix, so that
        models trained with other items held out never share a folder."""
        if not self.cold:
            return ""
        digest = hashlib.sha256(",".join(map(str, sorted(self.cold))).encode()).hexdigest()
        return f"-cold{digest[:8]}"

    def with_cold(self, cold: frozenset[int], rule: str = "") -> Dataset:
        """The same data with `cold` held out of every fit (a new dataset; this one is kept)."""
        return replace(self, cold=frozenset(cold), cold_rule=rule)

    def sequence(self, user: str) -> list[int]:
        try:
            return self.sequences[user]
        except KeyError:
            raise DataError(f"unknown user id `{user}` in dataset `{self.name}`") from None

    def train_sequence(self, user: str) -> list[int]:
        """The user's training interactions: everything before the validation position,
        cold items left out."""
        seq = self.sequence(user)
        train = seq[:-2] if len(seq) >= MIN_EVAL_LENGTH else list(seq)
        return [i for i in train if i not in self.cold] if self.cold else train

    def train_sequences(self) -> dict[str, list[int]]:
        return {user: self.train_sequence(user) for user in self.sequences}

    def _eval_sequence(self, user: str) -> list[int]:
        seq = self.sequence(user)
        if len(seq) < MIN_EVAL_LENGTH:
            raise DataError(
                f"user `{user}` has {len(seq)} interaction(s); evaluation needs {MIN_EVAL_LENGTH}"
            )
        return seq

    def history(self, user: str, stage: Stage) -> list[int]:
        """What the model may see when predicting `stage`'s target (valid: train; test: +valid)."""
        seq = self._eval_sequence(user)
        return seq[:-2] if stage == "valid" else seq[:-1]

    def target(self, user: str, stage: Stage) -> int:
        seq = self._eval_sequence(user)
        return seq[-2] if stage == "valid" else seq[-1]

    def candidates(self, user: str, stage: Stage) -> list[int]:
        """Target first, then the frozen negatives."""
        return [self.target(user, stage), *self.negatives[stage][user]]

    def train_popularity(self) -> list[int]:
        """Interaction counts per item index over training sequences only (index 0 unused)."""
        packed = self._packed_sequences()
        lengths = packed.lengths()
        train = np.ones(len(packed.flat), dtype=bool)
        ends = packed.offsets[1:][lengths >= MIN_EVAL_LENGTH]
        train[ends - 1] = train[ends - 2] = False  # the test and validation positions
        counts = np.bincount(packed.flat[train], minlength=self.n_items + 1)
        counts[sorted(self.cold)] = 0  # out of every training sequence
        return counts.tolist()

    def _packed_sequences(self) -> PackedLists[int]:
        """`sequences` as flat arrays: themselves when loaded; a copy of a plain dict, made
        each time (a caller may have changed the dict since)."""
        if isinstance(self.sequences, PackedLists):
            return self.sequences
        return PackedLists.from_lists(self.sequences, np.int64)


def split_json(dataset: Dataset) -> str:
    """The sequences and negatives as one JSON text with sorted keys (what benchmark rows
    fingerprint: the same text whether they are packed or plain dicts)."""
    negatives = {stage: dict(lists) for stage, lists in dataset.negatives.items()}
    return json.dumps([dict(dataset.sequences), negatives], sort_keys=True)


def load_dataset(folder: Path) -> Dataset:
    """Load a folder written by `prepare_dataset`, verifying every file's checksum."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise NotPreparedError(
            f"no prepared dataset in `{folder}`: run `mmsrarec data prepare --dataset <name>`"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise NotPreparedError(f"`{folder}` was prepared by another version: prepare it again")
    for filename, expected in manifest["files"].items():
        path = folder / filename
        if not path.exists() or sha256_file(path) != expected:
            raise DataError(
                f"`{path}` is missing or was changed after preparation (checksum mismatch); "
                "run `mmsrarec data prepare --force` to rebuild it"
            )
    fields = {}
    if "fields.jsonl" in manifest["files"]:
        fields = {row["item_id"]: row["fields"] for row in _read_jsonl(folder / "fields.jsonl")}
    items = [
        Item(item_id=row["item_id"], title=row["title"], text=row["text"], image=row.get("image"),
             fields=fields.get(row["item_id"], {}))
        for row in _read_jsonl(folder / "items.jsonl")
    ]  # fmt: skip
    index = {item.item_id: i for i, item in enumerate(items, start=1)}
    sequences, timestamps = _read_sequences(folder / "sequences.jsonl", index)
    negatives = _read_negatives(folder / "negatives.json", index)
    return Dataset(manifest["name"], items, sequences, negatives, timestamps,
                   item_kind=manifest.get("item_kind", "item"))  # fmt: skip


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _read_sequences(
    path: Path, index: dict[str, int]
) -> tuple[PackedLists[int], PackedLists[float]]:
    """`sequences.jsonl` a line at a time into (item indices, timestamps): no list of every
    row is ever held. Rows without timestamps (older preparations) are left out of the
    second."""
    users: list[str] = []
    stamped: list[str] = []
    lengths, stamp_lengths = array("q"), array("q")
    items, stamps = array("i"), array("d")  # int32, float64
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            users.append(row["user_id"])
            lengths.append(len(row["items"]))
            items.extend([index[item] for item in row["items"]])
            if "timestamps" in row:
                stamped.append(row["user_id"])
                stamp_lengths.append(len(row["timestamps"]))
                stamps.extend(row["timestamps"])
    sequences = PackedLists[int](users, _offsets(lengths), np.frombuffer(items, np.int32))
    shared = sequences.index if stamped == users else None
    times = PackedLists[float](stamped, _offsets(stamp_lengths), np.frombuffer(stamps), shared)
    return sequences, times


def _read_negatives(path: Path, index: dict[str, int]) -> dict[Stage, Mapping[str, list[int]]]:
    """`negatives.json` (`{stage: {user_id: [item ids]}}`) a user at a time: `json.load` would
    hold a Python string per negative (40 M at 10^6 users) before any is converted."""
    reader = _JsonReader(path.read_text(encoding="utf-8"))
    negatives: dict[str, PackedLists[int]] = {}
    for stage in reader.members():
        users: list[str] = []
        lengths, drawn = array("q"), array("i")
        for user in reader.members():
            ids = reader.value()
            users.append(user)
            lengths.append(len(ids))
            drawn.extend([index[item] for item in ids])
        shared = next((p.index for p in negatives.values() if p.users == users), None)
        negatives[stage] = PackedLists[int](
            users, _offsets(lengths), np.frombuffer(drawn, np.int32), shared
        )
    return {stage: negatives[stage] for stage in STAGES}


def _offsets(lengths: array) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.frombuffer(lengths, np.int64))]).astype(np.int64)


class _JsonReader:
    """Reads a JSON text whose top levels are objects, one member at a time; each value
    below is decoded whole by `json`'s C scanner."""

    SPACE = re.compile(r"[ \t\n\r]*")

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0
        self.decoder = json.JSONDecoder()

    def members(self) -> Iterator[str]:
        """The keys of the object at the reader; the caller reads each one's value before
        asking for the next key."""
        self._expect("{")
        if self._peek() == "}":
            self.pos += 1
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise DataError(f"a JSON object key is not a string at character {self.pos}")
            self._expect(":")
            yield key
            if self._expect(",}") == "}":
                return

    def value(self) -> Any:
        self.pos = self.SPACE.match(self.text, self.pos).end()
        try:
            value, self.pos = self.decoder.raw_decode(self.text, self.pos)
        except json.JSONDecodeError as error:
            raise DataError(f"invalid JSON: {error}") from None
        return value

    def _peek(self) -> str:
        self.pos = self.SPACE.match(self.text, self.pos).end()
        return self.text[self.pos : self.pos + 1]

    def _expect(self, allowed: str) -> str:
        char = self._peek()
        if not char or char not in allowed:
            raise DataError(f"invalid JSON: expected one of `{allowed}` at character {self.pos}")
        self.pos += 1
        return char
