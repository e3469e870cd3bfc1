"""Sequence-level training of the LLM recommender (`models/item_lm.py`).

One forward over a window of up to `max_len` training items yields a full-catalog softmax
at every position, so a window teaches up to `max_len` targets at once. Early stopping and
the kept checkpoint are chosen by NDCG@5 on the validation position with its frozen 20
negatives. After every epoch the trainable weights, the optimizer and the RNG states are
written atomically to `checkpoint.pt`: a killed run resumes from the last finished epoch.

Reads only training sequences and the validation stage; never the test stage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mmsrarec.data import Dataset
from mmsrarec.metrics import ndcg, ranks_from_scores
from mmsrarec.models.item_lm import ItemLM, ItemLMConfig
from mmsrarec.training.checkpoints import load_resumable, save_resumable
from mmsrarec.training.losses import (
    FULL_SOFTMAX_MAX_ITEMS,
    corrected_softmax,
    draw_negatives,
    sampling_log_q,
)
from mmsrarec.training.sasrec_trainer import window_bounds

logger = logging.getLogger(__name__)

SCORE_BATCH = 64
# (user, prefix of the user's items known at that time) -> retrieval item indices
Retrieve = Callable[[Sequence[tuple[str, Sequence[int]]]], list[list[int]]]


@dataclass
class Window:
    """Training items `items[:-1]` predicting `items[1:]`, `retrieved` known at its start.

    `start` is the index of `items[0]` in the user's training sequence.
    """

    user: str
    items: list[int]
    retrieved: list[int] = field(default_factory=list)
    start: int = 0


@dataclass
class ItemLMResult:
    """What training returns; the model holds the best epoch's weights afterwards."""

    best_epoch: int
    best_valid_ndcg5: float
    log: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def user_windows(sequences: dict[str, list[int]], max_len: int) -> list[Window]:
    """Cut each sequence into windows of at most `max_len + 1` items from the end, overlapping
    by one, so every training transition is trained on exactly once."""
    return [
        Window(user, list(seq[start:end]), start=start)
        for user, seq in sequences.items()
        for start, end in window_bounds(len(seq), max_len)
    ]


def add_retrieval(windows: list[Window], sequences: dict[str, list[int]], retrieve: Retrieve):
    """Retrieval items of each window, from the user's items up to the window's first input:
    no position sees the user's own later items."""
    prefixes = [(w.user, sequences[w.user][: w.start + 1]) for w in windows]
    for window, retrieved in zip(windows, retrieve(prefixes), strict=True):
        window.retrieved = list(retrieved)


def right_pad(rows: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
    """LongTensor [len(rows), width] of the rows, padded with 0 on the right."""
    width = width or max(1, max((len(r) for r in rows), default=1))
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            out[i, : len(row)] = torch.tensor(list(row)[:width], dtype=torch.long)
    return out


def _autocast(model: ItemLM, enabled: bool):
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def score_histories(
    model: ItemLM,
    histories: Sequence[Sequence[int]],
    retrieved: Sequence[Sequence[int]] | None,
    max_len: int,
    bf16: bool = False,
) -> np.ndarray:
    """Catalog scores [len(histories), n_items + 1] from the last `max_len` items of each."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(histories), SCORE_BATCH):
        chunk = histories[start : start + SCORE_BATCH]
        batch = [model.known(h)[-max_len:] or [0] for h in chunk]
        items = right_pad(batch).to(device)
        prefix = None
        if retrieved is not None:
            prefix = right_pad(retrieved[start : start + SCORE_BATCH]).to(device)
        with _autocast(model, bf16):
            hidden = model(items, prefix)  # [B, T, H]
            last = (items > 0).sum(1).clamp(min=1) - 1
            state = hidden[torch.arange(len(batch), device=device), last]
            rows.append(model.item_logits(state).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(rows) if rows else np.zeros((0, model.n_items + 1), np.float32)


def validation_ndcg5(
    model: ItemLM, dataset: Dataset, retrieved: Sequence[Sequence[int]] | None, config: ItemLMConfig
) -> float:
    """NDCG@5 on the validation position against its frozen negatives (pessimistic ties)."""
    users = dataset.valid_users
    scores = score_histories(
        model, [dataset.history(u, "valid") for u in users], retrieved, config.max_len, config.bf16
    )
    candidates = np.array([dataset.candidates(u, "valid") for u in users])
    return ndcg(ranks_from_scores(np.take_along_axis(scores, candidates, axis=1), 0), 5)


@dataclass
class Sampled:
    """A sampled softmax's settings for `_batch_loss` (None there: the full softmax)."""

    log_q: torch.Tensor  # `sampling_log_q` of the training counts
    negatives: int
    generator: torch.Generator


def loss_for(config: ItemLMConfig, n_items: int) -> str:
    """`full` or `sampled`: `config.loss`, with `auto` resolved for a catalog of `n_items`."""
    if config.loss != "auto":
        return config.loss
    return "full" if n_items <= FULL_SOFTMAX_MAX_ITEMS else "sampled"


def _batch_loss(
    model: ItemLM,
    windows: list[Window],
    bf16: bool,
    id_mask: torch.Tensor | None = None,
    sampled: Sampled | None = None,
) -> tuple[torch.Tensor, int]:
    device = next(model.parameters()).device
    batch = right_pad([w.items for w in windows]).to(device)
    inputs, targets = batch[:, :-1], batch[:, 1:]  # [B, T]
    prefix = None
    if any(w.retrieved for w in windows):
        prefix = right_pad([w.retrieved for w in windows]).to(device)
    valid = targets > 0
    positives = targets[valid]
    with _autocast(model, bf16):
        hidden = model(inputs, prefix, id_mask)[valid]  # [N, H]
        if sampled is None:
            logits = model.item_logits(hidden, id_mask)
        else:  # one head call over the positives and the drawn items: [N, N + S]
            drawn = draw_negatives(sampled.log_q, sampled.negatives, sampled.generator, device)
            logits = model.item_logits(hidden, id_mask, torch.cat([positives, drawn]))
    if sampled is None:
        return F.cross_entropy(logits.float(), positives), int(valid.sum())
    n = len(positives)
    logits = logits.float()
    loss = corrected_softmax(logits[:, :n].diagonal(), logits[:, n:], drawn, positives,
                             sampled.log_q)  # fmt: skip
    return loss, n


def id_dropout_mask(model: ItemLM, share: float, generator: torch.Generator) -> torch.Tensor | None:
    """Items whose ID a training batch uses: those with an ID, less a random `share` of them
    (drawn on the training generator, so a resumed run draws the same); None when 0."""
    if not share:
        return None
    hidden = torch.rand(model.n_items + 1, generator=generator) < share
    return model.has_id & ~hidden.to(model.has_id.device)


def train_item_lm_epoch(
    model: ItemLM,
    windows: list[Window],
    optimizers: tuple[torch.optim.Optimizer, Any],
    config: ItemLMConfig,
    generator: torch.Generator,
    id_dropout: float = 0.0,
    sampled: Sampled | None = None,
    step: Callable[[], None] | None = None,
    desc: str | None = None,
) -> float:
    """One pass over `windows` in an order drawn on `generator`, `config.batch_size` per step;
    returns the mean loss per target.

    Args:
        optimizers: the optimizer over the trainable parameters and its LR scheduler.
        step: called between backward and the gradient clipping (data-parallel training
            averages the gradients there, as DDP does), or None.
        desc: a progress bar's title, or None for no bar.
    """
    optimizer, scheduler = optimizers
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    order = torch.randperm(len(windows), generator=generator).tolist()
    total, count = 0.0, 0
    bar = tqdm(range(math.ceil(len(windows) / config.batch_size)), desc=desc, disable=desc is None)
    for index in bar:
        chosen = [windows[i] for i in order[index * config.batch_size :][: config.batch_size]]
        id_mask = id_dropout_mask(model, id_dropout, generator)
        loss, targets = _batch_loss(model, chosen, config.bf16, id_mask, sampled)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step is not None:
            step()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        total, count = total + loss.item() * targets, count + targets
        bar.set_postfix(loss=f"{total / count:.3f}")
    bar.close()
    return total / max(count, 1)


def train_item_lm(
    model: ItemLM,
    dataset: Dataset,
    config: ItemLMConfig,
    seed: int,
    windows: list[Window],
    valid_retrieved: Sequence[Sequence[int]] | None = None,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> ItemLMResult:
    """Train `model` in place; on return it holds the weights of the best validation epoch.

    Args:
        windows: training windows (`user_windows`, with `add_retrieval` when used).
        valid_retrieved: retrieval items per `dataset.valid_users` at the validation stage.
        checkpoint: where the state of the last finished epoch is kept (resume), or None.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer, scheduler = optimizers_for(model, config, len(windows))
    result = ItemLMResult(best_epoch=0, best_valid_ndcg5=-math.inf)
    best_state = model.trainable_state()
    id_dropout = config.id_dropout_for(bool(dataset.cold))
    sampled = None
    if loss_for(config, dataset.n_items) == "sampled":
        log_q = sampling_log_q(dataset.train_popularity())
        sampled = Sampled(log_q, config.sampled_negatives, generator)
    first_epoch = 1
    saved = load_resumable(checkpoint, next(model.parameters()).device)
    if saved is not None:
        model.load_state_dict(saved["model"], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"].cpu())
        torch.set_rng_state(saved["torch_rng"].cpu())
        best_state, first_epoch = saved["best_state"], saved["epoch"] + 1
        result = ItemLMResult(saved["best_epoch"], saved["best_valid_ndcg5"], saved["log"])
        logger.info("LLM recommender: resumed after epoch %d from %s", saved["epoch"], checkpoint)
    stale = sum(1 for row in result.log if row["epoch"] > result.best_epoch)
    for epoch in range(first_epoch, config.max_epochs + 1):
        if stale >= config.patience:
            break
        epoch_loss = train_item_lm_epoch(
            model, windows, (optimizer, scheduler), config, generator, id_dropout, sampled,
            desc=f"LLM recommender epoch {epoch}" if progress else None,
        )  # fmt: skip
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"training loss became {epoch_loss} at epoch {epoch}: lower `lr`"
            )
        score = validation_ndcg5(model, dataset, valid_retrieved, config)
        result.log.append({"epoch": epoch, "loss": epoch_loss, "valid_ndcg5": score,
                           "seconds": time.perf_counter() - started})  # fmt: skip
        logger.info("epoch %d: loss %.4f, valid NDCG@5 %.4f", epoch, epoch_loss, score)
        if score > result.best_valid_ndcg5:
            result.best_epoch, result.best_valid_ndcg5 = epoch, score
            best_state, stale = model.trainable_state(), 0
        else:
            stale += 1
        if checkpoint is not None:
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            _save_checkpoint(checkpoint, model, state, generator, best_state, epoch, result)
    model.load_state_dict(best_state, strict=False)
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


def optimizers_for(model: ItemLM, config: ItemLMConfig, n_windows: int):
    """AdamW over the trainable parameters and its LR schedule for epochs of `n_windows`."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return optimizer, _scheduler(optimizer, config, math.ceil(n_windows / config.batch_size))


def _scheduler(optimizer: torch.optim.Optimizer, config: ItemLMConfig, steps_per_epoch: int):
    from transformers import get_constant_schedule, get_cosine_schedule_with_warmup

    if config.schedule == "constant":
        return get_constant_schedule(optimizer)
    total = steps_per_epoch * config.max_epochs
    return get_cosine_schedule_with_warmup(optimizer, max(1, total // 20), total)


def _save_checkpoint(path, model, optimizers, generator, best_state, epoch, result) -> None:
    save_resumable(path, {
        "model": model.trainable_state(), **optimizers,
        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
        "best_state": best_state, "epoch": epoch, "best_epoch": result.best_epoch,
        "best_valid_ndcg5": result.best_valid_ndcg5, "log": result.log,
    })  # fmt: skip
