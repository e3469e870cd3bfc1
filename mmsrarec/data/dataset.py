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
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Literal

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
    """Prepared data. Sequences and negatives hold item indices (1-based)."""

    name: str
    items: list[Item]
    sequences: dict[str, list[int]]
    negatives: dict[Stage, dict[str, list[int]]]
    timestamps: dict[str, list[float]] = field(default_factory=dict, repr=False)
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
        counts = [0] * (self.n_items + 1)
        for seq in self.train_sequences().values():
            for index in seq:
                counts[index] += 1
        return counts


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
    rows = _read_jsonl(folder / "sequences.jsonl")
    sequences = {row["user_id"]: [index[item] for item in row["items"]] for row in rows}
    timestamps = {row["user_id"]: row["timestamps"] for row in rows if "timestamps" in row}
    frozen = json.loads((folder / "negatives.json").read_text(encoding="utf-8"))
    negatives: dict[Stage, dict[str, list[int]]] = {
        stage: {user: [index[i] for i in ids] for user, ids in frozen[stage].items()}
        for stage in STAGES
    }
    return Dataset(manifest["name"], items, sequences, negatives, timestamps,
                   item_kind=manifest.get("item_kind", "item"))  # fmt: skip


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
