"""Data at scale: the synthetic generator, and streamed preparation giving the same bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmsrarec.cli import app
from mmsrarec.cli.common import run_guarded
from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.data.prepare import Grouped, _negatives_json, draw_negatives
from mmsrarec.data.readers import Interactions
from mmsrarec.data.synth import SynthConfig, synthesize
from mmsrarec.storage import sha256_file

# sha256 of ML-100K's prepared files as the first, list-based `prepare_dataset` wrote them.
# Every trained model is keyed on these files: they must never change.
ML100K_FILES = {
    "items.jsonl": "1bd77c019db42d85895dfb2aedfa3131de8c53b0f01c4eec1ad7dfeb50ffba6d",
    "negatives.json": "edd8fad2dd13aedc09cdd2f4bbb5a1c1c6ea9cb7c89a8f0381326498f13a91d9",
    "sequences.jsonl": "3c40fb3a72ecf5e6f922a4023afcae2ef79c2c685cf5c038ce84bf9c69f92c7b",
}


def test_ml100k_prepares_to_the_same_bytes(tmp_path) -> None:
    folder, _ = prepare_dataset("ml-100k", tmp_path)
    assert {name: sha256_file(folder / name) for name in ML100K_FILES} == ML100K_FILES


def list_based_negatives(sequences: dict[str, list[str]], item_ids: list[str], per_user, seed):
    """The first version's draw: the pool of unseen items built as a list for every user."""
    rng = np.random.default_rng(seed)
    drawn = {"valid": {}, "test": {}}
    for user in sorted(sequences):
        if len(sequences[user]) < 3:
            continue
        seen = set(sequences[user])
        pool = np.array([i for i, item in enumerate(item_ids) if item not in seen])
        for stage in ("valid", "test"):
            drawn[stage][user] = [item_ids[i] for i in rng.choice(pool, per_user, replace=False)]
    return drawn


@pytest.mark.parametrize("n_items", [40, 12_000])  # numpy draws differently above 10,000
def test_streamed_negatives_equal_the_list_based_draw_and_json(n_items) -> None:
    rng = np.random.default_rng(5)
    users = ["b", "a", 'ü"x', "10", "9", "z\\n"]
    item_ids = [f"it{i}é" if i % 7 else f'q"{i}' for i in range(n_items)]
    user = np.repeat(np.arange(len(users)), [2, 5, 9, 3, 30, 4])
    item = rng.integers(0, n_items, size=len(user))
    timestamp = rng.integers(0, 5, size=len(user)).astype(float)
    grouped = Grouped(Interactions(users, user, item, timestamp))
    frozen = draw_negatives(grouped, n_items, 6, seed=3)
    sequences = {
        users[u]: [item_ids[i] for i in grouped.item[grouped.span(u)]] for u in range(len(users))
    }
    expected = list_based_negatives(sequences, item_ids, 6, 3)
    text = "".join(_negatives_json(grouped, frozen, np.array(item_ids, dtype=object)))
    assert json.loads(text) == expected
    assert text == json.dumps(expected, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def test_synthetic_data_plants_its_structure(tmp_path) -> None:
    config = SynthConfig(users=400, items=300, seed=1, topics=10, drift=0.1)
    folder, written = synthesize(config, tmp_path)
    assert written and folder.name == "synthetic-u400-i300-s1"
    assert (
        "cost measurements only" in json.loads((folder / "synthetic.json").read_text())["synthetic"]
    )
    assert synthesize(config, tmp_path) == (folder, False)  # finished: not redone
    dataset = load_dataset(prepare_dataset(folder, tmp_path / "data", negatives=5)[0])
    assert len(dataset.users) == 400 and dataset.n_items == 300
    assert min(len(seq) for seq in dataset.sequences.values()) >= 3
    counts = np.sort(np.bincount(np.concatenate(list(dataset.sequences.values()))))[::-1]
    assert counts[:15].sum() > 0.3 * counts.sum()  # power law: 5% of items, > 30% of events
    topic = {index: int(dataset.item(index).item_id[1:]) % 10 for index in range(1, 301)}
    seqs = dataset.sequences.values()
    same = np.mean([topic[a] == topic[b] for s in seqs for a, b in zip(s[:-1], s[1:], strict=True)])
    assert same > 0.8  # drift 0.1: consecutive items mostly share a topic (chance: ~0.2)
    assert "Synthetic" in dataset.item(1).text and "topic" in dataset.item(1).text


def test_synthetic_data_is_reproducible_per_seed(tmp_path) -> None:
    first, _ = synthesize(SynthConfig(50, 40, seed=2, topics=5), tmp_path / "a")
    again, _ = synthesize(SynthConfig(50, 40, seed=2, topics=5), tmp_path / "b")
    other, _ = synthesize(SynthConfig(50, 40, seed=3, topics=5), tmp_path / "c")
    read = [(f / "interactions.jsonl").read_bytes() for f in (first, again, other)]
    assert read[0] == read[1] != read[2]


def test_cli_synth_and_its_errors(tmp_path, capsys) -> None:
    args = ["data", "synth", "--users", "20", "--items", "60", "--out", str(tmp_path)]
    assert run_guarded(app, args) == 0
    assert "synthetic" in capsys.readouterr().out
    assert (tmp_path / "synthetic-u20-i60-s0" / "catalog.jsonl").exists()
    assert run_guarded(app, [*args, "--topics", "100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "`topics`" in err and len(err.strip().splitlines()) == 1
