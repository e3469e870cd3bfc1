"""Shared fixtures: a tiny dataset in the users' JSONL format and prepared ML-100K."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GENRES = ["space opera", "romantic comedy", "horror", "documentary", "animated musical"]


def write_tiny_jsonl(folder: Path, n_users: int = 12, n_items: int = 40) -> Path:
    """A small catalog and interaction log with a learnable pattern: users walk the catalog
    in order (item i is followed by item i+1), starting at different places."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "catalog.jsonl").open("w", encoding="utf-8") as handle:
        for i in range(1, n_items + 1):
            genre = GENRES[i % len(GENRES)]
            row = {"item_id": f"m{i}", "title": f"Movie {i}", "description": f"A {genre} film."}
            handle.write(json.dumps(row) + "\n")
    with (folder / "interactions.jsonl").open("w", encoding="utf-8") as handle:
        for u in range(n_users):
            start = 1 + (3 * u) % (n_items - 10)
            for step in range(6 + u % 4):
                row = {"user_id": f"u{u}", "item_id": f"m{start + step}", "timestamp": 1000 + step}
                handle.write(json.dumps(row) + "\n")
    return folder


@pytest.fixture
def tiny_source(tmp_path: Path) -> Path:
    return write_tiny_jsonl(tmp_path / "tiny")


@pytest.fixture
def tiny_dataset(tmp_path: Path, tiny_source: Path):
    from mmsrarec.data import load_dataset, prepare_dataset

    folder, _ = prepare_dataset(tiny_source, tmp_path / "data", negatives=5)
    return load_dataset(folder)


@pytest.fixture(scope="session")
def ml100k(tmp_path_factory: pytest.TempPathFactory):
    """ML-100K prepared from the installed recbole package (about 1 s)."""
    from mmsrarec.data import load_dataset, prepare_dataset

    folder, _ = prepare_dataset("ml-100k", tmp_path_factory.mktemp("ml100k"))
    return load_dataset(folder)
