"""GRPO of the keyword summarizer (TRL `GRPOTrainer`, LoRA) on the critic's own rewards.

Prompts are exactly the graph summarizer's (`LLMSummarizer.prompt`: the chat template with
the few-shot examples, or the base model's plain prompt), one per training item; the dataset
column `description` (the item text) reaches the rewards by keyword.

Rewards: `reward_funcs = [r_total, r_info, r_recon, r_len]` with `reward_weights =
[1, 0, 0, 0]`. Only `r_total` (the critic's normalised, weighted sum in [0, 1]) drives the
advantages; the three raw rewards are the critic's own functions, weight 0, so TRL logs each
component per step (`rewards/r_info/mean`, ...) without letting their raw scales mix: raw
`r_recon` is minus a perplexity (tens to thousands) and would swamp `r_info` (a cosine) under
any fixed linear weights. `r_recon` is computed under a frozen copy of the base model, so the
policy cannot lower its own perplexity yardstick.

Items: those that occur in training sequences, shuffled with `seed`; the first `n_heldout`
are held out (never prompted) and summarised greedily before and after training.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmsrarec.critic.rewards import (
    length_reward,
    make_info_reward,
    make_recon_reward,
    make_total_reward,
)
from mmsrarec.data import Dataset, Item
from mmsrarec.errors import DataError
from mmsrarec.models import LLM
from mmsrarec.models.llm import load_llm
from mmsrarec.training.config import SummarizerTrainConfig
from mmsrarec.training.plots import REWARD_KEYS, plot_curves, write_log_history

logger = logging.getLogger(__name__)


@dataclass
class KeywordQuality:
    """Greedy keywords of held-out items, scored with the raw rewards."""

    n_items: int
    mean_keywords: float
    r_info: float
    r_recon: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


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
    """GRPO rows: the summarizer's exact prompt text and the item description."""
    from mmsrarec.summarization import LLMSummarizer

    summarizer = LLMSummarizer(llm)
    return [{"prompt": summarizer.prompt(item), "description": item.text, "item_id": item.item_id}
            for item in items]  # fmt: skip


def keyword_quality(llm: LLM, items: list[Item], r_info: Any, r_recon: Any) -> KeywordQuality:
    """Summarise `items` greedily with `llm` and score the keywords with the raw rewards."""
    from mmsrarec.summarization import LLMSummarizer

    if not items:
        return KeywordQuality(0, 0.0, 0.0, 0.0)
    keywords = LLMSummarizer(llm).summarize(items, {})
    completions = [", ".join(keywords[item.item_id]) for item in items]
    description = [item.text for item in items]
    return KeywordQuality(
        n_items=len(items),
        mean_keywords=float(np.mean([len(keywords[item.item_id]) for item in items])),
        r_info=float(np.mean(r_info(completions, description=description))),
        r_recon=float(np.mean(r_recon(completions, description=description))),
    )


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
    `config.output_dir`; return the report.

    Args:
        config: Trainer and data settings (`output_dir` must be set).
        dataset: Prepared dataset; only items of training sequences are used.
        policy: The summarizer LLM to tune (LoRA is added on top of its model).
        encoder: phi of `r_info` (a `SentenceEncoder`).
        reward_llm: A frozen copy of the base model for `r_recon` (not `policy`).
        resume: Continue from the last checkpoint in `output_dir` when there is one.
    """
    from datasets import Dataset as HFDataset
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOTrainer

    out = Path(config.output_dir)
    train_items, heldout = split_items(dataset, config.n_items, config.n_heldout, config.seed)
    r_info, r_recon = make_info_reward(encoder), make_recon_reward(reward_llm)
    r_total = make_total_reward(encoder, reward_llm, config.reward_weights_model())
    config.reward_weights = [1.0, 0.0, 0.0, 0.0]
    before = keyword_quality(policy, heldout, r_info, r_recon)
    logger.info("held-out keywords before GRPO: %s", before)
    trainer = GRPOTrainer(
        model=policy.model,
        reward_funcs=[r_total, r_info, r_recon, length_reward],
        args=config,
        train_dataset=HFDataset.from_list(prompt_rows(policy, train_items)),
        processing_class=policy.tokenizer,
        peft_config=config.lora_config(),
    )
    last = get_last_checkpoint(str(out)) if resume and out.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(str(out / "adapter"))
    trained = dataclasses.replace(policy, model=trainer.model)
    trainer.model.eval()
    after = keyword_quality(trained, heldout, r_info, r_recon)
    history = trainer.state.log_history
    write_log_history(history, out / "log_history.jsonl")
    plot_curves(history, REWARD_KEYS, out / "rewards.png", f"GRPO rewards ({policy.name})")
    report = {
        "model": policy.name,
        "resumed_from": last,
        "train_items": len(train_items),
        "heldout_items": len(heldout),
        "steps": trainer.state.global_step,
        "reward_weights": config.reward_weights_model().model_dump(),
        "before": before.as_dict(),
        "after": after.as_dict(),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def load_reward_llm(spec: str, settings: Any) -> LLM:
    """A separate, frozen copy of the base model for `r_recon`."""
    llm = load_llm(spec, settings)
    llm.model.requires_grad_(False)
    return llm
