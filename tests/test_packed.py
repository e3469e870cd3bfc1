"""The loaded dataset's packed lists: a read-only dict of lists in every way callers use one,
read from the prepared files without a dict of Python lists in between."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mmsrarec.data import Dataset, load_dataset, prepare_dataset
from mmsrarec.data.dataset import STAGES, _JsonReader, _read_negatives, split_json
from mmsrarec.data.packed import PackedLists
from mmsrarec.errors import DataError

LISTS = {"b": [3, 1, 2], "a": [], "c": [7]}


def test_packed_lists_behave_as_the_dict() -> None:
    packed = PackedLists.from_lists(LISTS, np.int32)
    assert packed == LISTS and dict(packed) == LISTS
    assert LISTS == packed  # noqa: SIM300  (dict's == first, then the mapping's)
    assert list(packed) == list(LISTS) and list(packed.items()) == list(LISTS.items())
    assert len(packed) == 3 and "a" in packed and "z" not in packed
    assert packed.get("z", []) == [] and {**packed, "d": [1]} == {**LISTS, "d": [1]}
    assert packed["b"] + [9] == [3, 1, 2, 9] and type(packed["b"][0]) is int
    assert json.dumps(dict(packed)) == json.dumps(LISTS)
    assert packed.lengths().tolist() == [3, 0, 1]
    assert packed != PackedLists.from_lists({**LISTS, "c": [8]}, np.int32)
    reordered = PackedLists.from_lists(dict(reversed(LISTS.items())), np.int32)
    assert packed == reordered  # as dicts: order does not count


def test_packed_lists_are_read_only() -> None:
    packed = PackedLists.from_lists(LISTS, np.int32)
    copy = packed["b"]
    copy.append(4)  # a fresh list each time
    assert packed["b"] == [3, 1, 2]
    with pytest.raises(ValueError):
        packed.array("b")[0] = 5
    with pytest.raises(TypeError):
        packed["b"] = [1]  # type: ignore[index]
    with pytest.raises(KeyError):
        packed["z"]


def test_the_loaded_dataset_is_packed_and_equals_the_files(tiny_dataset: Dataset) -> None:
    assert isinstance(tiny_dataset.sequences, PackedLists)
    assert tiny_dataset.sequences.flat.dtype == np.int32
    assert tiny_dataset.timestamps.flat.dtype == np.float64
    assert all(isinstance(tiny_dataset.negatives[s], PackedLists) for s in STAGES)
    assert tiny_dataset.timestamps.index is tiny_dataset.sequences.index  # one user index
    assert tiny_dataset.negatives["valid"].index is tiny_dataset.negatives["test"].index


def test_loading_matches_the_json_files(tiny_source: Path, tmp_path: Path) -> None:
    folder, _ = prepare_dataset(tiny_source, tmp_path / "d", negatives=5)
    dataset = load_dataset(folder)
    index = dataset.item_index
    rows = [json.loads(line) for line in (folder / "sequences.jsonl").read_text().splitlines()]
    assert dict(dataset.sequences) == {r["user_id"]: [index[i] for i in r["items"]] for r in rows}
    assert list(dataset.sequences) == [r["user_id"] for r in rows]
    assert dict(dataset.timestamps) == {r["user_id"]: r["timestamps"] for r in rows}
    frozen = json.loads((folder / "negatives.json").read_text())
    for stage in STAGES:
        expected = {u: [index[i] for i in ids] for u, ids in frozen[stage].items()}
        assert dict(dataset.negatives[stage]) == expected
        assert list(dataset.negatives[stage]) == list(expected)


def test_negatives_read_from_any_json_layout(tmp_path: Path) -> None:
    """The streaming reader reads what `json.load` reads, whitespace and escapes included."""
    index = {"x": 1, 'q"uote': 2, "é]": 3}
    frozen = {"test": {"u\\1": ["x", 'q"uote'], "u2": []}, "valid": {"u\\1": ["é]"], "u2": ["x"]}}
    for layout in ({}, {"indent": 3}, {"separators": (",", ":")}, {"ensure_ascii": False}):
        path = tmp_path / "negatives.json"
        path.write_text(json.dumps(frozen, **layout), encoding="utf-8")
        read = _read_negatives(path, index)
        assert {s: dict(read[s]) for s in STAGES} == {
            s: {u: [index[i] for i in ids] for u, ids in frozen[s].items()} for s in STAGES
        }


@pytest.mark.parametrize("text", ["", "[]", '{"test": {"u": ["x"]', '{"test" {}}', "{1: {}}"])
def test_broken_negatives_json_is_a_data_error(text: str) -> None:
    reader = _JsonReader(text)
    with pytest.raises(DataError, match="JSON"):
        for _ in reader.members():
            for _ in reader.members():
                reader.value()


def test_plain_dicts_give_the_same_dataset_answers(tiny_dataset: Dataset) -> None:
    """A dataset built from plain dicts (as tests build them) answers as the packed one."""
    plain = dataclasses.replace(
        tiny_dataset,
        sequences=dict(tiny_dataset.sequences),
        negatives={s: dict(tiny_dataset.negatives[s]) for s in STAGES},
        timestamps=dict(tiny_dataset.timestamps),
    )
    assert plain == tiny_dataset and split_json(plain) == split_json(tiny_dataset)
    for cold in (frozenset(), frozenset({1, 5, 9})):
        packed, copy = tiny_dataset.with_cold(cold), plain.with_cold(cold)
        assert packed.train_popularity() == copy.train_popularity() == _popularity(copy)
        assert packed.eval_users == copy.eval_users
        assert packed.train_sequences() == copy.train_sequences()


def _popularity(dataset: Dataset) -> list[int]:
    """The first, list-based count."""
    counts = [0] * (dataset.n_items + 1)
    for seq in dataset.train_sequences().values():
        for index in seq:
            counts[index] += 1
    return counts
