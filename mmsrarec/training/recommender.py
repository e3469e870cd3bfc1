"""Multi-task LoRA SFT of the recommender (TRL `SFTTrainer`), with early stopping.

Training examples come from training positions only (`instructions.training_examples`);
eval examples predict each sampled user's validation item (`validation_examples`), whose
loss drives early stopping and the choice of the best checkpoint. Keywords in prompts are the
summarizer's cached keywords where the keyword cache has them, else keywords parsed from the
item's text (`instructions.text_keywords`).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from mmsrarec.data import Dataset, Item
from mmsrarec.models import LLM
from mmsrarec.storage import atomic_write_json
from mmsrarec.training.checkpoints import completion_marker, last_complete_checkpoint
from mmsrarec.training.config import RecommenderTrainConfig
from mmsrarec.training.instructions import text_keywords, training_examples, validation_examples
from mmsrarec.training.plots import LOSS_KEYS, plot_curves, write_log_history
from mmsrarec.types import KeywordsFor, SimilarFor

logger = logging.getLogger(__name__)


def cached_keywords(store: Any, dataset: Dataset) -> KeywordsFor:
    """Keywords from a `KeywordStore` (one bulk read), as the graph's prompts show them (an
    empty stored list too); the item's own text only for items the store lacks."""
    stored = store.get_many(dataset.items) if store is not None else {}

    def keywords_for(item: Item) -> list[str]:
        return stored[item.item_id] if item.item_id in stored else text_keywords(item)

    return keywords_for


def build_datasets(
    config: RecommenderTrainConfig,
    dataset: Dataset,
    llm: LLM,
    keywords_for: KeywordsFor = text_keywords,
    similar_for: SimilarFor | None = None,
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(training rows, validation rows) for `config`'s tasks and sizes."""
    common = dict(
        tasks=config.task_list,
        negatives=config.negatives,
        n_history=config.n_history,
        keywords_for=keywords_for,
        similar_for=similar_for,
        seed=config.seed,
    )
    train = training_examples(
        llm, dataset, n_users=config.n_users, positions_per_user=config.positions_per_user,
        **common,
    )  # fmt: skip
    valid = validation_examples(llm, dataset, n_users=config.n_valid_users, **common)
    return train, valid


def _hf(rows: list[dict[str, str]]) -> Any:
    """A `datasets.Dataset` of the prompt-completion columns (the task name stays out)."""
    from datasets import Dataset as HFDataset

    return HFDataset.from_list(
        [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    )


def train_recommender(
    config: RecommenderTrainConfig,
    dataset: Dataset,
    llm: LLM,
    keywords_for: KeywordsFor = text_keywords,
    similar_for: SimilarFor | None = None,
    *,
    resume: bool = True,
) -> dict[str, Any]:
    """Run SFT; write the adapter, log history, loss-curve PNG and report under
    `config.output_dir`; return the report.

    Args:
        config: Trainer and data settings (`output_dir` must be set).
        dataset: Prepared dataset (training positions; validation targets for eval only).
        llm: The recommender LLM; LoRA is added on top of its model.
        keywords_for: Keywords of an item in prompts.
        similar_for: Similar users for yes/no prompts (None: no collaborative block).
        resume: Continue from the last checkpoint in `output_dir` when there is one.
    """
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    out = Path(config.output_dir)
    train_rows, valid_rows = build_datasets(config, dataset, llm, keywords_for, similar_for)
    callbacks = [completion_marker()]
    if valid_rows:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    trainer = SFTTrainer(
        model=llm.model,
        args=config,
        train_dataset=_hf(train_rows),
        eval_dataset=_hf(valid_rows) if valid_rows else None,
        processing_class=llm.tokenizer,
        peft_config=config.lora_config(),
        callbacks=callbacks,
    )
    last = last_complete_checkpoint(out) if resume and out.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(str(out / "adapter"))
    trainer.model.eval()
    history = trainer.state.log_history
    write_log_history(history, out / "log_history.jsonl")
    plot_curves(history, LOSS_KEYS, out / "loss.png", f"SFT loss ({llm.name})")
    losses = [row["eval_loss"] for row in history if "eval_loss" in row]
    report = {
        "model": llm.name,
        "resumed_from": last,
        "train_examples": len(train_rows),
        "valid_examples": len(valid_rows),
        "tasks": dict(Counter(row["task"] for row in train_rows)),
        "steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "eval_loss_first": losses[0] if losses else None,
        "eval_loss_best": min(losses) if losses else None,
    }
    atomic_write_json(out / "report.json", report)
    return report
