"""Prepare a dataset: stable chronological order, leave-one-out split, frozen negatives.

Order: by timestamp; ties keep the order of rows in the source file (a stable sort), so
the test target is the last row of the user's last second. Output files are written
atomically and the manifest last, holding every file's sha256: a killed run leaves no
manifest (the next run starts over) and a finished one is never redone unless `force`.

Interactions stay in arrays from reading to writing (`readers.Interactions`): one stable
sort groups them by user, and each file is streamed out a user at a time, so 10^7
interactions prepare in a few GB. The files are byte for byte those of the first, list-based
version (`tests/test_data.py` checks ML-100K's checksums).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmsrarec.data.dataset import FORMAT_VERSION, MIN_EVAL_LENGTH, STAGES
from mmsrarec.data.readers import Interactions, RawData, collect, read_source
from mmsrarec.errors import DataError
from mmsrarec.storage import atomic_write_chunks, atomic_write_json, sha256_file

NEGATIVES_SEED = 20251224
NEGATIVES_PER_USER = 20
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a prepared dataset's folder name


class Grouped:
    """Interactions grouped by user (first-appearance order), chronological within a user.

    `item[starts[u]:starts[u + 1]]` are user u's catalog positions, oldest first.
    """

    def __init__(self, interactions: Interactions) -> None:
        order = np.lexsort((interactions.timestamp, interactions.user))  # stable: ties keep
        self.users = interactions.users  # file order
        self.item = interactions.item[order]
        self.timestamp = interactions.timestamp[order]
        counts = np.bincount(interactions.user, minlength=len(self.users))
        self.starts = np.concatenate([[0], np.cumsum(counts)])

    def span(self, user: int) -> slice:
        return slice(int(self.starts[user]), int(self.starts[user + 1]))

    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)


def draw_negatives(grouped: Grouped, n_items: int, per_user: int, seed: int) -> np.ndarray:
    """Catalog positions [n_eval_users, len(STAGES), per_user]: for each evaluable user (in
    sorted id order) and stage, `per_user` items drawn uniformly without replacement from the
    items the user never interacted with (in any split).

    The draw equals `rng.choice(unseen, per_user, replace=False)` on the array of unseen
    positions; that array is never built: the k-th unseen position is k plus the number of
    seen positions at or before it.
    """
    rng = np.random.default_rng(seed)
    evaluable = _evaluable(grouped)
    drawn = np.empty((len(evaluable), len(STAGES), per_user), dtype=np.int64)
    for row, user in enumerate(evaluable):
        seen = np.unique(grouped.item[grouped.span(user)])
        before = seen - np.arange(len(seen))  # unseen positions before each seen one
        pool = n_items - len(seen)
        if pool < per_user:
            raise DataError(
                f"user `{grouped.users[user]}` has only {pool} unseen items, fewer than the "
                f"{per_user} negatives asked for; lower `--negatives`"
            )
        for stage in range(len(STAGES)):
            picks = rng.choice(pool, size=per_user, replace=False)
            drawn[row, stage] = picks + np.searchsorted(before, picks, side="right")
    return drawn


def _evaluable(grouped: Grouped) -> list[int]:
    """Users with at least `MIN_EVAL_LENGTH` interactions, in sorted raw-id order."""
    lengths = grouped.lengths()
    users = [u for u in range(len(grouped.users)) if lengths[u] >= MIN_EVAL_LENGTH]
    return sorted(users, key=grouped.users.__getitem__)


def prepare_dataset(
    source: str | Path,
    datasets_dir: Path,
    *,
    negatives: int = NEGATIVES_PER_USER,
    seed: int = NEGATIVES_SEED,
    force: bool = False,
    name: str | None = None,
) -> tuple[Path, bool]:
    """Prepare `source` into `datasets_dir/<name>` (`name`: the source's own name unless
    given). Returns (folder, whether it was (re)built).

    Raises:
        DataError: the folder holds a dataset prepared from other source files (changed
            since, or another source under the same name): the message names what differs.
    """
    raw = read_source(source)
    if name is not None:
        if not NAME.fullmatch(name):
            raise DataError(f"`--name {name[:40]}`: use letters, digits, `.`, `-` and `_` only")
        raw = dataclasses.replace(raw, name=name)
    return prepare_raw(raw, datasets_dir / raw.name, negatives=negatives, seed=seed, force=force)


def prepare_raw(
    raw: RawData,
    folder: Path,
    *,
    negatives: int = NEGATIVES_PER_USER,
    seed: int = NEGATIVES_SEED,
    force: bool = False,
) -> tuple[Path, bool]:
    """Prepare `raw` into `folder` (see `prepare_dataset`)."""
    source = raw.source
    manifest_path = folder / "manifest.json"
    settings = {"negatives": negatives, "negatives_seed": seed, "format_version": FORMAT_VERSION}
    hashes = {path.name: sha256_file(path) for path in raw.files}
    if manifest_path.exists() and not force:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        changed = _changed_files(manifest.get("source_files"), hashes)
        if changed:
            raise DataError(
                f"`{folder}` was prepared from other source files ({changed}): add `--force` "
                "to prepare it again (models trained on it will train again), or `--name` to "
                "prepare this source beside it"
            )
        if all(manifest.get(key) == value for key, value in settings.items()):
            return folder, False
    manifest_path.unlink(missing_ok=True)

    grouped = Grouped(raw.interactions)
    del raw.interactions  # the grouped copy is the only one from here on
    if not (grouped.lengths() >= MIN_EVAL_LENGTH).any():
        raise DataError(f"no user of `{source}` has {MIN_EVAL_LENGTH} interactions to split")
    frozen = draw_negatives(grouped, len(raw.items), negatives, seed)
    item_ids = np.array([item.item_id for item in raw.items], dtype=object)

    atomic_write_chunks(
        folder / "items.jsonl",
        (
            _line({"item_id": it.item_id, "title": it.title, "text": it.text, "image": it.image})
            for it in raw.items
        ),
    )
    atomic_write_chunks(folder / "sequences.jsonl", _sequence_lines(grouped, item_ids))
    atomic_write_chunks(folder / "negatives.json", _negatives_json(grouped, frozen, item_ids))
    files = ("items.jsonl", "sequences.jsonl", "negatives.json")
    if any(item.fields for item in raw.items):  # the source's other columns (release dates...)
        atomic_write_chunks(
            folder / "fields.jsonl",
            (_line({"item_id": it.item_id, "fields": it.fields}) for it in raw.items if it.fields),
        )
        files += ("fields.jsonl",)
    atomic_write_json(
        manifest_path,
        {
            **settings,
            "name": raw.name,
            "source": raw.source,
            "item_kind": raw.kind,
            "tie_rule": "timestamp, then source file row order (stable sort)",
            "split": "leave-one-out: last = test, second-last = valid, rest = train",
            "files": {name: sha256_file(folder / name) for name in files},
            "source_files": hashes,
        },
    )
    return folder, True


def _changed_files(before: dict[str, str] | None, now: dict[str, str]) -> str:
    """What differs between two sets of source-file hashes ("" when nothing does, or when the
    folder was prepared before hashes were kept)."""
    if before is None:
        return ""
    parts = [
        f"`{name}` changed" for name in sorted(set(before) & set(now)) if before[name] != now[name]
    ]
    parts += [f"`{name}` is new" for name in sorted(set(now) - set(before))]
    parts += [f"`{name}` is gone" for name in sorted(set(before) - set(now))]
    return "; ".join(parts)


def read_prepared(folder: Path) -> RawData:
    """A prepared folder back as `RawData`: its items (their prepared text and fields) and
    its interactions in their prepared order, with their timestamps. Preparing it again gives
    the same sequences (the order is already chronological and the sort is stable)."""
    from mmsrarec.data.dataset import load_dataset

    dataset = load_dataset(folder)  # verifies the checksums
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    with (folder / "sequences.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    interactions = collect(
        (
            (row["user_id"], item, float(timestamp))
            for row in rows
            for item, timestamp in zip(row["items"], row["timestamps"], strict=True)
        ),
        list(dataset.items),
        folder / "sequences.jsonl",
    )
    return RawData(
        dataset.name, list(dataset.items), interactions, manifest["source"], kind=dataset.item_kind
    )


def _line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def _sequence_lines(grouped: Grouped, item_ids: np.ndarray) -> Iterator[str]:
    for user, user_id in enumerate(grouped.users):
        span = grouped.span(user)
        yield _line(
            {
                "user_id": user_id,
                "items": item_ids[grouped.item[span]].tolist(),
                "timestamps": grouped.timestamp[span].tolist(),
            }
        )


def _negatives_json(grouped: Grouped, frozen: np.ndarray, item_ids: np.ndarray) -> Iterator[str]:
    """`{stage: {user_id: [item ids]}}` as `storage.atomic_write_json` writes it (indent 1,
    sorted keys), one user at a time instead of one string of the whole file."""
    evaluable = _evaluable(grouped)
    stages = sorted(enumerate(STAGES), key=lambda pair: pair[1])  # (column in frozen, name)
    for position, (s, stage) in enumerate(stages):
        yield ("{\n" if position == 0 else ",\n") + f" {_text(stage)}: {{"
        for row, user in enumerate(evaluable):
            ids = ",\n".join(f"   {_text(i)}" for i in item_ids[frozen[row, s]].tolist())
            yield f"{',' if row else ''}\n  {_text(grouped.users[user])}: [\n{ids}\n  ]"
        yield "\n }"
    yield "\n}\n"


def _text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
