"""`mmsrarec train ...`: every option's default is the training config's own default.

The commands are run in-process with the heavy parts (data, models, trainers) replaced by
stubs that capture what the command built, so no model is loaded and nothing trains.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from mmsrarec.cli.common import run_guarded
from mmsrarec.cli.train import app
from mmsrarec.models.item_lm import ItemLMConfig
from mmsrarec.recommenders.methods import LLM_VARIANTS
from mmsrarec.training.config import SummarizerTrainConfig
from mmsrarec.training.yes_no_trainer import YesNoConfig


class _Models:
    def __init__(self, settings: Any) -> None: ...

    def llm(self) -> None:
        return None

    def encoder(self) -> None:
        return None


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    import mmsrarec.data
    import mmsrarec.models
    import mmsrarec.recommenders.yes_no
    import mmsrarec.training.summarizer

    seen: dict[str, Any] = {}
    monkeypatch.setenv("MMSRAREC_THREADS", "1")
    monkeypatch.setenv("MMSRAREC_RUN_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(mmsrarec.data, "load_dataset", lambda folder: "dataset")
    monkeypatch.setattr(mmsrarec.models, "ModelCache", _Models)
    monkeypatch.setattr(mmsrarec.training.summarizer, "load_reward_llm", lambda *a: None)

    def train(config: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        seen["config"] = config
        return {}

    class YesNo:  # records what `train recommender` would train
        def __init__(self, settings: Any, config: Any, device: Any = None) -> None:
            self.config, self.meta = config, {"best_examples": 0, "best_valid_ndcg5": 0.5}

        def fit(self, dataset: Any, seed: int) -> None:
            seen.setdefault("yes_no", []).append((self.config, seed))

        def save_dir(self, seed: int) -> str:
            return f"seed{seed}"

    monkeypatch.setattr(mmsrarec.training.summarizer, "train_summarizer", train)
    monkeypatch.setattr(mmsrarec.recommenders.yes_no, "YesNoRecommender", YesNo)
    return seen


def _fields(config: Any) -> dict[str, Any]:
    values = config.to_dict()
    values.pop("logging_dir", None)  # TRL stamps it with the time of construction
    return values


def test_cli_defaults_are_the_config_defaults(captured) -> None:
    assert run_guarded(app, ["summarizer"]) == 0
    built = captured["config"]
    assert isinstance(built, SummarizerTrainConfig)
    assert _fields(built) == _fields(SummarizerTrainConfig(output_dir=built.output_dir))
    assert run_guarded(app, ["recommender"]) == 0
    assert captured.pop("yes_no") == [(YesNoConfig(), 0)]


def test_recommender_options_reach_the_yes_no_config(captured) -> None:
    flags = ["--seeds", "2", "--k-similar", "0", "--examples", "40", "--keywords", "base",
             "--negatives", "5", "--lr", "0.001", "--valid-users", "7"]  # fmt: skip
    assert run_guarded(app, ["recommender", *flags]) == 0
    expected = YesNoConfig(k_similar=0, examples=40, keywords="base", negatives=5, lr=0.001,
                           n_valid_users=7)  # fmt: skip
    assert captured["yes_no"] == [(expected, 0), (expected, 1)]
    assert run_guarded(app, ["recommender", "--keywords", "best"]) == 2  # one error line


def test_an_option_reaches_its_field(captured) -> None:
    args = ["--steps", "7", "--items", "9", "--heldout", "3", "--learning-rate", "0.01", "--cpu"]
    assert run_guarded(app, ["summarizer", *args]) == 0
    built = captured["config"]
    assert (built.max_steps, built.n_items, built.n_heldout) == (7, 9, 3)
    assert (built.learning_rate, built.use_cpu) == (0.01, True)


class _LLMRecommender:
    def __init__(self, name: str, seen: dict[str, Any]) -> None:
        self.config = ItemLMConfig(**LLM_VARIANTS[name])  # type: ignore[arg-type]
        self.seen = seen
        self.meta = {"best_epoch": 1, "best_valid_ndcg5": 0.5}

    def fit(self, dataset: Any, seed: int) -> None:
        self.seen.setdefault("fitted", []).append(self.config)

    def save_dir(self, seed: int) -> str:
        return f"seed{seed}"


@pytest.mark.parametrize("variant", ["llm-recommender", "llm-recommender-retrieval"])
def test_llm_recommender_options_default_to_the_variants_config(
    captured, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    import mmsrarec.recommenders.methods

    monkeypatch.setattr(
        mmsrarec.recommenders.methods,
        "build_recommender",
        lambda name, settings: _LLMRecommender(name, captured),
    )
    assert run_guarded(app, ["llm-recommender", "--variant", variant]) == 0
    assert captured.pop("fitted") == [ItemLMConfig(**LLM_VARIANTS[variant])]  # type: ignore[arg-type]
    flags = ["--layers", "2", "--epochs", "3", "--k-similar", "1"]
    assert run_guarded(app, ["llm-recommender", "--variant", variant, *flags]) == 0
    expected = dataclasses.replace(
        ItemLMConfig(**LLM_VARIANTS[variant]),  # type: ignore[arg-type]
        layers=2,
        max_epochs=3,
        k_similar=1,
    )
    assert captured["fitted"] == [expected]


@pytest.mark.parametrize("tag", ["../escape", "a/b", "x" * 41])
def test_a_tag_that_is_no_plain_name_is_one_error_line(tag: str, tmp_path, capsys) -> None:
    code = run_guarded(app, ["summarizer", "--tag", tag, "--run-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "`--tag`" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing written
