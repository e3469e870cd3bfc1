"""GRPO of the keyword summarizer (TRL `GRPOTrainer`, LoRA) on the critic's own rewards.

Prompts are exactly the graph summarizer's (`LLMSummarizer.prompt`: the chat template with
the few-shot examples, or the base model's plain prompt), one per training item; the dataset
columns `description` (the item text) and `item_id` reach the rewards by keyword.

- Reward: one TRL reward function, the critic's `r_total` (`make_total_reward`): each raw
  reward (R_info, R_recon, R_len and, with a positive `delta_collab`, R_collab) runs once
  per batch on the distinct completions, and their means go to TRL's metric log
  (`raw/r_info`, `norm/info`, ...). `r_recon` runs under a frozen copy of the base model,
  so the policy cannot lower its own perplexity yardstick.
- Generation is inference's: the same token budget (`stopping.MAX_NEW_TOKENS`) and each
  sampled completion cut where the summarizer's stop rule ends greedy generation
  (`StopRuleGRPOTrainer`); tokens after that point get no gradient.
- Checkpoints: marked complete after each save and resumed only when complete
  (`training.checkpoints`), so a kill during a save never resumes from a
  half-written one. The adapter and the report are replaced atomically too.
- Held-out items (never prompted) are summarised greedily before and after training and
  scored with the same rewards; the report holds the paired 95% interval of tuned - base.

Items: those that occur in training sequences, shuffled with `seed`; the first `n_heldout`
are held out.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback
from trl import GRPOTrainer

from mmsrarec.critic.collab import CollabTargets
from mmsrarec.critic.rewards import (
    RewardWeights,
    make_rewards,
    make_total_reward,
    normalise,
    raw_scores,
    weighted_total,
)
from mmsrarec.data import Dataset, Item
from mmsrarec.errors import DataError
from mmsrarec.metrics import paired_interval
from mmsrarec.models import LLM
from mmsrarec.models.llm import load_llm
from mmsrarec.storage import atomic_write_json
from mmsrarec.summarization.parse import MAX_KEYWORDS
from mmsrarec.summarization.stopping import stop_length
from mmsrarec.training.checkpoints import completion_marker, last_complete_checkpoint
from mmsrarec.training.config import SummarizerTrainConfig
from mmsrarec.training.plots import REWARD_KEYS, plot_curves, write_log_history

logger = logging.getLogger(__name__)


class StopRuleGRPOTrainer(GRPOTrainer):
    """GRPO whose completions end where greedy inference would stop (`stopping.answered`)."""

    def _generate_single_turn(self, *args: Any, **kwargs: Any) -> tuple[list, Any]:
        completion_ids, logprobs = super()._generate_single_turn(*args, **kwargs)
        tokenizer = self.processing_class
        cut = [ids[: stop_length(ids, tokenizer, MAX_KEYWORDS)] for ids in completion_ids]
        if logprobs is not None:
            logprobs = [row[: len(ids)] for row, ids in zip(logprobs, cut, strict=True)]
        return cut, logprobs


class StopAfter(TrainerCallback):
    """End training (with a checkpoint) once `minutes` of wall time have passed."""

    def __init__(self, minutes: float) -> None:
        self.seconds, self.started = minutes * 60, time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.seconds and time.monotonic() - self.started >= self.seconds:
            control.should_training_stop = control.should_save = True


def split_items(dataset: Dataset, n_items: int, n_heldout: int, seed: int) -> tuple[list, list]:
    """(training items, held-out items) among items of training sequences with text."""
    seen = sorted({i for seq in dataset.train_sequences().values() for i in seq})
    items = [dataset.item(i) for i in seen if dataset.item(i).text.strip()]
    random.Random(seed).shuffle(items)
    if len(items) < n_heldout + 1:
        raise DataError(f"`{dataset.name}` has {len(items)} training items with text; "
                        "lower `n_heldout`")  # fmt: skip
    return items[n_heldout : n_heldout + n_items], items[:n_heldout]


def prompt_rows(llm: LLM, items: list[Item]) -> list[dict[str, str]]:
    """GRPO rows: the summarizer's exact prompt text, the item description and id."""
    from mmsrarec.summarization import LLMSummarizer

    summarizer = LLMSummarizer(llm)
    return [{"prompt": summarizer.prompt(item), "description": item.text, "item_id": item.item_id}
            for item in items]  # fmt: skip


def heldout_scores(
    llm: LLM, items: list[Item], rewards: dict[str, Any], weights: RewardWeights, vocab: int
) -> list[dict[str, Any]]:
    """Greedy keywords of `items` (the summarizer as the graph runs it), each scored with the
    raw and normalised rewards and the total."""
    from mmsrarec.summarization import LLMSummarizer

    if not items:
        return []
    keywords = LLMSummarizer(llm).summarize(items, {})
    completions = [", ".join(keywords[item.item_id]) for item in items]
    raws = raw_scores(rewards, completions, [item.text for item in items],
                      [item.item_id for item in items])  # fmt: skip
    rows = []
    for item, raw in zip(items, raws, strict=True):
        scaled = normalise(raw, vocab_size=vocab)
        rows.append({"item_id": item.item_id, "title": item.title,
                     "keywords": keywords[item.item_id], "raw": raw, "norm": scaled,
                     "total": weighted_total(scaled, weights)})  # fmt: skip
    return rows


def compare_heldout(base: list[dict[str, Any]], tuned: list[dict[str, Any]]) -> dict[str, Any]:
    """`benchmarks/critic/heldout.json`'s shape: means and paired 95% intervals (tuned - base)."""
    if not base:
        return {"n_items": 0}

    def column(rows: list[dict[str, Any]], part: str, key: str | None = None) -> np.ndarray:
        return np.array([row[part] if key is None else row[part][key] for row in rows])

    total = paired_interval(column(tuned, "total"), column(base, "total"))
    components = {}
    for part in ("norm", "raw"):
        for key in base[0][part]:
            a, b = column(tuned, part, key), column(base, part, key)
            components[f"{part}/{key}"] = {"base": float(b.mean()), "tuned": float(a.mean()),
                                           **paired_interval(a, b)}  # fmt: skip
    counts = [len(row["keywords"]) for row in base], [len(row["keywords"]) for row in tuned]
    components["keywords"] = {"base": float(np.mean(counts[0])), "tuned": float(np.mean(counts[1]))}
    return {"n_items": len(base), "r_total_base": float(column(base, "total").mean()),
            "r_total_tuned": float(column(tuned, "total").mean()), "diff": total["diff"],
            "ci_low": total["low"], "ci_high": total["high"], "components": components}  # fmt: skip


def _replace_dir(tmp: Path, final: Path) -> None:
    """Put folder `tmp` at `final`: readers see the old folder or the new one, whole."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def train_summarizer(
    config: SummarizerTrainConfig,
    dataset: Dataset,
    policy: LLM,
    encoder: Any,
    reward_llm: LLM,
    *,
    resume: bool = True,
) -> dict[str, Any]:
    """Run GRPO; write the adapter, log history, reward-curve PNG and report under
    `config.output_dir`; return the report (`config` is not changed).

    Args:
        config: Trainer and data settings (`output_dir` must be set).
        dataset: Prepared dataset; only items of training sequences are used.
        policy: The summarizer LLM to tune (LoRA is added on top of its model).
        encoder: phi of `r_info` and `r_collab` (a `SentenceEncoder`).
        reward_llm: A frozen copy of the base model for `r_recon` (not `policy`).
        resume: Continue from the newest complete checkpoint in `output_dir`.
    """
    from datasets import Dataset as HFDataset

    out = Path(config.output_dir)
    train_items, heldout = split_items(dataset, config.n_items, config.n_heldout, config.seed)
    weights = config.reward_weights_model()
    collab = CollabTargets.from_dataset(dataset, seed=config.seed) if weights.delta else None
    rewards = make_rewards(encoder, reward_llm, collab)
    vocab = len(reward_llm.tokenizer)
    before = heldout_scores(policy, heldout, rewards, weights, vocab)
    trainer = StopRuleGRPOTrainer(
        model=policy.model,
        reward_funcs=[make_total_reward(encoder, reward_llm, weights, collab)],
        args=config,
        train_dataset=HFDataset.from_list(prompt_rows(policy, train_items)),
        processing_class=policy.tokenizer,
        peft_config=config.lora_config(),
        callbacks=[StopAfter(config.max_minutes), completion_marker()],
    )
    last = last_complete_checkpoint(out) if resume and out.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    staging = out / "adapter.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))
    _replace_dir(staging, out / "adapter")
    trained = dataclasses.replace(policy, model=trainer.model)
    trainer.model.eval()
    after = heldout_scores(trained, heldout, rewards, weights, vocab)
    history = trainer.state.log_history
    write_log_history(history, out / "log_history.jsonl")
    plot_curves(history, REWARD_KEYS, out / "rewards.png", f"GRPO rewards ({policy.name})")
    report = {
        "model": policy.name,
        "resumed_from": last,
        "train_items": len(train_items),
        "heldout_items": len(heldout),
        "steps": trainer.state.global_step,
        "step_seconds": _step_seconds(history),
        "reward_weights": weights.model_dump(),
        "collab": collab is not None,
        "heldout": compare_heldout(before, after),
        "examples": [
            {
                "title": b["title"],
                "base": b["keywords"],
                "tuned": a["keywords"],
                "total_base": b["total"],
                "total_tuned": a["total"],
            }
            for b, a in zip(before, after, strict=True)
        ],  # fmt: skip
    }
    atomic_write_json(out / "report.json", report)
    return report


def _step_seconds(history: list[dict[str, Any]]) -> float | None:
    """Mean wall seconds per optimizer step from TRL's final log row."""
    final = next((row for row in reversed(history) if "train_runtime" in row), None)
    steps = max((int(row.get("step", 0)) for row in history), default=0)
    return final["train_runtime"] / steps if final and steps else None


def load_reward_llm(spec: str, settings: Any) -> LLM:
    """A separate, frozen copy of the base model for `r_recon`."""
    llm = load_llm(spec, settings)
    llm.model.requires_grad_(False)
    return llm
