"""Prepare a dataset: stable chronological order, leave-one-out split, frozen negatives.

Order: by timestamp; ties keep the order of rows in the source file (a stable sort), so
the test target is the last row of the user's last second. Output files are written
atomically and the manifest last, holding every file's sha256: a killed run leaves no
manifest (the next run starts over) and a finished one is never redone unless `force`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from mmsrarec.data.dataset import FORMAT_VERSION, MIN_EVAL_LENGTH, STAGES
from mmsrarec.data.readers import RawData, read_source
from mmsrarec.errors import DataError
from mmsrarec.storage import atomic_write_json, atomic_write_jsonl, sha256_file

NEGATIVES_SEED = 20251224
NEGATIVES_PER_USER = 20
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a prepared dataset's folder name


def chronological_sequences(raw: RawData) -> dict[str, list[tuple[str, float]]]:
    """Per user, (item_id, timestamp) sorted by timestamp, ties in file order."""
    by_user: dict[str, list[tuple[str, float]]] = {}
    for user, item, timestamp in raw.interactions:
        by_user.setdefault(user, []).append((item, timestamp))
    return {
        user: sorted(events, key=lambda event: event[1])  # sorted() is stable
        for user, events in by_user.items()
    }


def draw_negatives(
    sequences: dict[str, list[str]],
    item_ids: list[str],
    per_user: int,
    seed: int,
) -> dict[str, dict[str, list[str]]]:
    """For each stage and evaluable user, `per_user` items drawn uniformly without replacement
    from the items the user never interacted with (in any split)."""
    rng = np.random.default_rng(seed)
    catalog = np.array(item_ids, dtype=object)
    drawn: dict[str, dict[str, list[str]]] = {stage: {} for stage in STAGES}
    for user in sorted(sequences):
        seq = sequences[user]
        if len(seq) < MIN_EVAL_LENGTH:
            continue
        seen = set(seq)
        pool = np.array([i for i, item in enumerate(catalog) if item not in seen])
        if len(pool) < per_user:
            raise DataError(
                f"user `{user}` has only {len(pool)} unseen items, fewer than the "
                f"{per_user} negatives asked for; lower `--negatives`"
            )
        for stage in STAGES:
            picks = rng.choice(pool, size=per_user, replace=False)
            drawn[stage][user] = [str(catalog[i]) for i in picks]
    return drawn


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

    ordered = chronological_sequences(raw)
    sequences = {user: [item for item, _ in events] for user, events in ordered.items()}
    if not any(len(seq) >= MIN_EVAL_LENGTH for seq in sequences.values()):
        raise DataError(f"no user of `{source}` has {MIN_EVAL_LENGTH} interactions to split")
    frozen = draw_negatives(sequences, [item.item_id for item in raw.items], negatives, seed)

    atomic_write_jsonl(
        folder / "items.jsonl",
        (
            {"item_id": it.item_id, "title": it.title, "text": it.text, "image": it.image}
            for it in raw.items
        ),
    )
    atomic_write_jsonl(
        folder / "sequences.jsonl",
        (
            {
                "user_id": user,
                "items": sequences[user],
                "timestamps": [t for _, t in ordered[user]],
            }
            for user in ordered
        ),
    )
    atomic_write_json(folder / "negatives.json", frozen)
    files = ("items.jsonl", "sequences.jsonl", "negatives.json")
    if any(item.fields for item in raw.items):  # the source's other columns (release dates...)
        atomic_write_jsonl(
            folder / "fields.jsonl",
            ({"item_id": it.item_id, "fields": it.fields} for it in raw.items if it.fields),
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
    interactions = [
        (row["user_id"], item, float(timestamp))
        for row in rows
        for item, timestamp in zip(row["items"], row["timestamps"], strict=True)
    ]
    return RawData(
        dataset.name, list(dataset.items), interactions, manifest["source"], kind=dataset.item_kind
    )
