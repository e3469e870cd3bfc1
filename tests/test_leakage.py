"""No evaluation data reaches training; the split and the frozen negatives are what they say.

The raw ML-100K file is read here independently of `mmsrarec.data` and sorted with a stable
sort by timestamp (ties keep file order), so the checks do not trust the code they check.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.errors import DataError


def raw_ml100k_sequences() -> dict[str, list[str]]:
    """Per user, item ids sorted by timestamp with a stable sort (file order breaks ties)."""
    spec = importlib.util.find_spec("recbole")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "dataset_example/ml-100k/ml-100k.inter"
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header = [name.split(":")[0] for name in rows[0]]
    u, i, t = (header.index(name) for name in ("user_id", "item_id", "timestamp"))
    events: dict[str, list[tuple[float, str]]] = {}
    for row in rows[1:]:
        events.setdefault(row[u], []).append((float(row[t]), row[i]))
    return {
        user: [item for _, item in sorted(rows_, key=lambda e: e[0])]
        for user, rows_ in events.items()
    }


def test_no_validation_or_test_interaction_in_training(ml100k) -> None:
    train = ml100k.train_sequences()
    train_pairs = {(user, item) for user, seq in train.items() for item in seq}
    for user in ml100k.eval_users:
        assert len(train[user]) == len(ml100k.sequences[user]) - 2
        for stage in ("valid", "test"):
            assert (user, ml100k.target(user, stage)) not in train_pairs
    assert sum(ml100k.train_popularity()) == sum(map(len, train.values()))


def test_negatives_are_unseen_and_exclude_the_target(ml100k) -> None:
    for stage in ("valid", "test"):
        for user in ml100k.eval_users:
            negatives = ml100k.negatives[stage][user]
            assert len(negatives) == 20 == len(set(negatives))
            assert not set(negatives) & set(ml100k.sequences[user])  # never seen, any split
            assert ml100k.target(user, stage) not in negatives
            assert ml100k.candidates(user, stage)[0] == ml100k.target(user, stage)


def test_targets_follow_the_stable_chronological_order(ml100k) -> None:
    raw = raw_ml100k_sequences()
    assert len(raw) == 943 == len(ml100k.eval_users)
    for user, items in raw.items():
        assert ml100k.item(ml100k.target(user, "test")).item_id == items[-1]
        assert ml100k.item(ml100k.target(user, "valid")).item_id == items[-2]
        history = [ml100k.item(index).item_id for index in ml100k.history(user, "test")]
        assert history == items[:-1]


def test_negatives_are_frozen_across_preparations(ml100k, tmp_path) -> None:
    again = load_dataset(prepare_dataset("ml-100k", tmp_path)[0])
    assert again.negatives == ml100k.negatives
    assert again.sequences == ml100k.sequences


def test_a_changed_byte_in_negatives_fails_loading(tmp_path) -> None:
    folder, _ = prepare_dataset("ml-100k", tmp_path / "data")
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    path = copy / "negatives.json"
    data = bytearray(path.read_bytes())
    position = data.index(b'"', data.index(b'"test"') + 6) + 1  # first digit of an id
    data[position] = ord("9") if data[position] != ord("9") else ord("8")
    path.write_bytes(bytes(data))
    json.loads(data)  # still valid JSON: only the checksum can catch it
    with pytest.raises(DataError, match="negatives.json"):
        load_dataset(copy)
