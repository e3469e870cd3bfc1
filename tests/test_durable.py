"""Durable training outputs, in process: reports and curves are written atomically, a
half-written GRPO checkpoint is never resumed, and SASRec resumes per epoch to the result of an
uninterrupted run. (The kill -9 tests on real processes are in `test_kill.py`.)"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from mmsrarec.config import Settings
from mmsrarec.models import load_llm
from mmsrarec.models.sasrec import SASRec, SASRecConfig
from mmsrarec.recommenders.sasrec import TRAINING_CHECKPOINT, SASRecRecommender
from mmsrarec.training import sasrec_trainer
from mmsrarec.training.checkpoints import MARKER, is_complete, last_complete_checkpoint
from mmsrarec.training.config import SummarizerTrainConfig
from mmsrarec.training.plots import LOSS_KEYS, plot_curves, write_log_history
from mmsrarec.training.sasrec_trainer import train_sasrec

TINY = SASRecConfig(max_len=8, hidden=16, layers=1, heads=2, dropout=0.1, lr=1e-2,
                    batch_size=4, max_epochs=8, patience=8, eval_every=2)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _new_model(dataset) -> SASRec:
    torch.manual_seed(0)
    return SASRec(dataset.n_items, TINY)


def test_sasrec_resumes_after_the_last_finished_epoch(tiny_dataset, tmp_path, monkeypatch):
    straight_model = _new_model(tiny_dataset)
    straight = train_sasrec(straight_model, tiny_dataset, TINY, 0, progress=False)

    checkpoint = tmp_path / "training.pt"
    real_validation = sasrec_trainer.validation_ndcg10
    calls = []

    def dies_at_the_third_evaluation(*args, **kwargs):  # epoch 6: after epoch 5's checkpoint
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_validation(*args, **kwargs)

    monkeypatch.setattr(sasrec_trainer, "validation_ndcg10", dies_at_the_third_evaluation)
    with pytest.raises(KeyboardInterrupt):
        train_sasrec(_new_model(tiny_dataset), tiny_dataset, TINY, 0, False, checkpoint, "run")
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["epoch"] == 5 and [row["epoch"] for row in saved["log"]] == [2, 4]
    monkeypatch.setattr(sasrec_trainer, "validation_ndcg10", real_validation)

    fresh = SASRec(tiny_dataset.n_items, TINY)  # other initial weights: all come from the file
    resumed = train_sasrec(fresh, tiny_dataset, TINY, 0, False, checkpoint, "run")
    assert resumed.log == straight.log
    assert resumed.best_epoch == straight.best_epoch
    assert all(
        torch.equal(fresh.state_dict()[k], v) for k, v in straight_model.state_dict().items()
    )

    other_run = _new_model(tiny_dataset)  # a checkpoint of another run is not resumed
    assert train_sasrec(other_run, tiny_dataset, TINY, 0, False, checkpoint, "other").log == (
        straight.log
    )


def test_sasrec_recommender_keeps_a_checkpoint_only_while_training(tiny_dataset, tmp_path):
    recommender = SASRecRecommender(TINY, save_dir=tmp_path, progress=False)
    recommender.fit(tiny_dataset, 0)
    assert (tmp_path / "seed0" / "meta.json").exists()
    assert not (tmp_path / "seed0" / TRAINING_CHECKPOINT).exists()


def test_reports_and_curves_are_replaced_atomically(tmp_path, monkeypatch):
    history = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_loss": 1.7}]
    log, png = tmp_path / "log_history.jsonl", tmp_path / "loss.png"
    write_log_history(history, log)
    plot_curves(history, LOSS_KEYS, png, "loss")
    before = log.read_bytes(), png.read_bytes()
    assert [json.loads(line) for line in log.read_text().splitlines()] == history

    def killed_before_the_rename(*args):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr("mmsrarec.storage.os.replace", killed_before_the_rename)
    longer = [*history, {"step": 3, "loss": 1.0}]
    with pytest.raises(KeyboardInterrupt):
        write_log_history(longer, log)
    with pytest.raises(KeyboardInterrupt):
        plot_curves(longer, LOSS_KEYS, png, "loss")
    assert (log.read_bytes(), png.read_bytes()) == before  # the old files, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log_history.jsonl", "loss.png"]


def test_a_half_written_grpo_checkpoint_is_never_resumed(
    tiny_dataset, tiny_lm_dir, tiny_encoder, tmp_path
):
    from mmsrarec.training.summarizer import train_summarizer

    out = tmp_path / "grpo"

    def config(steps: int) -> SummarizerTrainConfig:
        return SummarizerTrainConfig(
            output_dir=str(out), use_cpu=True, max_steps=steps, n_items=4, n_heldout=0,
            num_generations=2, per_device_train_batch_size=2, save_steps=2, learning_rate=1e-2,
            seed=0, save_total_limit=None,
        )  # fmt: skip

    def llm():
        return load_llm(str(tiny_lm_dir), Settings(cache_dir=tmp_path / "cache", offline=True))

    train_summarizer(config(4), tiny_dataset, llm(), tiny_encoder, llm())
    assert is_complete(out / "checkpoint-2") and is_complete(out / "checkpoint-4")
    # A kill while checkpoint-6 was being written: its weights cut short, no marker.
    shutil.copytree(out / "checkpoint-4", out / "checkpoint-6")
    (out / "checkpoint-6" / MARKER).unlink()
    weights = out / "checkpoint-6" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])

    report = train_summarizer(config(8), tiny_dataset, llm(), tiny_encoder, llm())
    assert report["resumed_from"] == str(out / "checkpoint-4") and report["steps"] == 8
    assert is_complete(out / "checkpoint-6") and is_complete(out / "checkpoint-8")
    assert [p.name.split("-17")[0] for p in out.glob("unfinished-*")] == ["unfinished-checkpoint-6"]
    assert json.loads((out / "report.json").read_text())["steps"] == 8
    assert last_complete_checkpoint(out) == str(out / "checkpoint-8")
