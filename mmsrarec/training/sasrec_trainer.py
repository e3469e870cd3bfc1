"""Training loop for SASRec: next-item prediction at every position, early stopping on
validation full-ranking NDCG@10, best weights restored. With a `checkpoint` path, the state
after every epoch (weights, optimizer, RNG states, best-so-far, patience) is written
atomically: a killed run resumes from the last finished epoch and ends as an uninterrupted
one would.

Reads only `dataset.train_sequences()` (training) and the validation stage
(`dataset.history(u, "valid")`, `dataset.target(u, "valid")`) for early stopping; never the
test stage.
"""

from __future__ import annotations

import copy
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
from mmsrarec.models.sasrec import SASRec, SASRecConfig
from mmsrarec.training.checkpoints import load_resumable, save_resumable
from mmsrarec.training.losses import (
    FULL_SOFTMAX_MAX_ITEMS,
    sampled_softmax_loss,
    sampling_log_q,
)

logger = logging.getLogger(__name__)

SCORE_BATCH = 256
BUCKET_BATCHES = 8  # batches sorted together by length: less padding, still shuffled


@dataclass
class TrainResult:
    """What `train_sasrec` returns (the model itself holds the best weights afterwards).

    Attributes:
        best_epoch: 1-based epoch whose weights were restored.
        best_valid_ndcg10: validation full-ranking NDCG@10 of those weights.
        log: one row per evaluated epoch: `epoch`, `loss` (the epoch's mean training loss
            per transition), `valid_ndcg10`.
        seconds: wall time of the whole loop.
    """

    best_epoch: int
    best_valid_ndcg10: float
    log: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def left_pad(histories: Sequence[Sequence[int]], max_len: int) -> torch.Tensor:
    """The last `max_len` items of each history, left-padded with 0 to the longest one.

    Returns a LongTensor [len(histories), T], T = min(max_len, longest history), at least 1.
    """
    width = max(1, min(max_len, max((len(h) for h in histories), default=1)))
    out = torch.zeros(len(histories), width, dtype=torch.long)
    for row, history in enumerate(histories):
        tail = list(history)[-width:]
        if tail:
            out[row, width - len(tail) :] = torch.tensor(tail, dtype=torch.long)
    return out


def training_windows(sequences: Sequence[Sequence[int]], max_len: int) -> list[list[int]]:
    """Cut each training sequence into windows of at most `max_len + 1` items, from the end.

    A window gives `max_len` (input, next item) pairs; consecutive windows overlap by one
    item so every transition of a long sequence is trained on exactly once. Sequences with
    fewer than 2 items hold no transition and are dropped.
    """
    return [
        list(seq[start:end]) for seq in sequences for start, end in window_bounds(len(seq), max_len)
    ]


def window_bounds(length: int, max_len: int) -> list[tuple[int, int]]:
    """(start, end) of each window of a sequence of `length` items, from the end (see
    `training_windows`)."""
    bounds, end = [], length
    while end >= 2:
        start = max(0, end - max_len - 1)
        bounds.append((start, end))
        end = start + 1
    return bounds


def masked_full_scores(
    scores: np.ndarray, histories: Sequence[Sequence[int]], targets: Sequence[int]
) -> np.ndarray:
    """Full-ranking protocol: history items (except the target) and padding set to -inf.

    `scores` is [n, n_items + 1] and is modified in place (and returned).
    """
    scores[:, 0] = -np.inf
    for row, (history, target) in enumerate(zip(histories, targets, strict=True)):
        seen = np.fromiter(set(history) - {target}, dtype=np.int64)
        scores[row, seen] = -np.inf
    return scores


@torch.no_grad()
def score_histories(model: SASRec, histories: Sequence[Sequence[int]]) -> np.ndarray:
    """Catalog scores [len(histories), n_items + 1] (column 0 = -inf), batch-wise, eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(histories), SCORE_BATCH):
        batch = [model.known(h) for h in histories[start : start + SCORE_BATCH]]
        items = left_pad(batch, model.max_len).to(device)
        hidden = model(items)[:, -1]  # [B, H]: the state after the last item
        rows.append(model.item_logits(hidden).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(rows) if rows else np.zeros((0, model.n_items + 1), np.float32)


def validation_ndcg10(model: SASRec, histories: list[list[int]], targets: list[int]) -> float:
    """Full-ranking NDCG@10 (history items masked, pessimistic ties), a batch of users at a
    time: only [SCORE_BATCH, n_items + 1] scores are held at once."""
    ranks = []
    for start in range(0, len(histories), SCORE_BATCH):
        batch = slice(start, start + SCORE_BATCH)
        scores = score_histories(model, histories[batch])
        masked_full_scores(scores, histories[batch], targets[batch])
        ranks.append(ranks_from_scores(scores, np.asarray(targets[batch])))
    return ndcg(np.concatenate(ranks) if ranks else np.array([], dtype=int), 10)


def resolved_loss(config: SASRecConfig, n_items: int) -> str:
    """`config.loss`, with `auto` made `ce` or `sampled` by the catalogue's size."""
    if config.loss != "auto":
        return config.loss
    return "ce" if n_items <= FULL_SOFTMAX_MAX_ITEMS else "sampled"


@dataclass
class EpochSetup:
    """What every epoch of a run reads: its windows, loss and sampling distribution.

    Attributes:
        windows: training windows (`training_windows`), at most `max_len + 1` items each.
        loss: `ce`, `bce` or `sampled` (`resolved_loss`).
        log_q: the sampled loss's `sampling_log_q` [n_items + 1] (None for the others).
    """

    windows: list[list[int]]
    loss: str
    log_q: torch.Tensor | None = None

    @classmethod
    def for_dataset(cls, dataset: Dataset, config: SASRecConfig) -> EpochSetup:
        loss = resolved_loss(config, dataset.n_items)
        windows = training_windows(list(dataset.train_sequences().values()), config.max_len)
        log_q = sampling_log_q(dataset.train_popularity()) if loss == "sampled" else None
        return cls(windows, loss, log_q)


def train_epoch(
    model: SASRec,
    setup: EpochSetup,
    optimizer: torch.optim.Optimizer,
    config: SASRecConfig,
    generator: torch.Generator,
    step: Callable[[], None] | None = None,
) -> float:
    """One pass over `setup.windows` in shuffled length buckets; returns the mean training
    loss per transition. `step` runs between `backward` and `optimizer.step` (data-parallel
    training averages the gradients there)."""
    device = next(model.parameters()).device
    lengths = [len(w) for w in setup.windows]
    model.train()
    total, count = 0.0, 0
    for indices in _length_bucketed_batches(lengths, config.batch_size, generator):
        batch = left_pad([setup.windows[i] for i in indices], config.max_len + 1)
        loss = _batch_loss(model, batch.to(device), setup, config, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step is not None:
            step()
        optimizer.step()
        transitions = int((batch[:, 1:] > 0).sum())
        total += loss.item() * transitions
        count += transitions
    return total / max(count, 1)


def _batch_loss(
    model: SASRec,
    windows: torch.Tensor,
    setup: EpochSetup,
    config: SASRecConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Mean loss over the non-padding positions of a batch of left-padded windows [B, T+1]."""
    inputs, targets = windows[:, :-1], windows[:, 1:]  # [B, T] each
    valid = targets > 0  # a padded input position has a padded target too
    hidden = model(inputs)[valid]  # [N, H]: only positions that have a next item
    positives = targets[valid]  # [N]
    if setup.loss == "ce":
        # Full softmax over the catalog; the padding column is -inf inside item_logits.
        return F.cross_entropy(model.item_logits(hidden), positives)
    if setup.loss == "sampled":
        return sampled_softmax_loss(hidden, positives, model.item_vectors(),
                                    setup.log_q, config.sampled_negatives, generator)  # fmt: skip
    # "bce": one negative per position, uniform over the catalog (the original SASRec loss).
    negatives = torch.randint(1, model.n_items + 1, positives.shape, generator=generator)
    negatives = negatives.to(positives.device)  # drawn on the CPU generator: same on any device
    weight = model.item_vectors()
    pos_logit = (hidden * weight[positives]).sum(-1)
    neg_logit = (hidden * weight[negatives]).sum(-1)
    return F.binary_cross_entropy_with_logits(
        pos_logit, torch.ones_like(pos_logit)
    ) + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit))


def _length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """Shuffled batches of similar-length windows (less padding to run through attention).

    Shuffle, sort each run of `BUCKET_BATCHES` batches by length, cut it into batches, then
    shuffle the batch order.
    """
    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def train_sasrec(
    model: SASRec,
    dataset: Dataset,
    config: SASRecConfig,
    seed: int,
    progress: bool = True,
    checkpoint: Path | None = None,
    run_key: str = "",
) -> TrainResult:
    """Train `model` in place; on return it holds the weights of the best validation epoch.

    Deterministic for a seed on a given machine and thread count, resumed or not.

    Args:
        checkpoint: where the state after each epoch is kept, and resumed from; None: no
            checkpoint.
        run_key: identifies the run (config, data, seed): a checkpoint with another key is
            not resumed.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device

    setup = EpochSetup.for_dataset(dataset, config)
    windows = setup.windows
    valid_users = dataset.valid_users
    valid_histories = [dataset.history(u, "valid") for u in valid_users]
    valid_targets = [dataset.target(u, "valid") for u in valid_users]
    logger.info(
        "SASRec: %d training windows (%d transitions), %d validation users",
        len(windows),
        sum(len(w) - 1 for w in windows),
        len(valid_users),
    )

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    best = TrainResult(best_epoch=0, best_valid_ndcg10=-math.inf)
    best_state = copy.deepcopy(model.state_dict())
    stale, first_epoch = 0, 1
    saved = _load_checkpoint(checkpoint, run_key, device)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        best_state, stale, first_epoch = saved["best_state"], saved["stale"], saved["epoch"] + 1
        best = TrainResult(saved["best_epoch"], saved["best_valid_ndcg10"], saved["log"])
        logger.info("SASRec: resumed after epoch %d from %s", saved["epoch"], checkpoint)
    epochs = range(first_epoch, config.max_epochs + 1)
    bar = tqdm(epochs, desc="SASRec", unit="epoch", disable=not progress)
    for epoch in bar:
        if stale >= config.patience:
            break
        epoch_loss = train_epoch(model, setup, optimizer, config, generator)
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"SASRec training loss became {epoch_loss} at epoch {epoch}: lower `lr`"
            )
        if epoch % config.eval_every == 0 or epoch == config.max_epochs:
            score = validation_ndcg10(model, valid_histories, valid_targets)
            best.log.append({"epoch": epoch, "loss": epoch_loss, "valid_ndcg10": score})
            logger.info("epoch %d: loss %.4f, valid NDCG@10 %.4f", epoch, epoch_loss, score)
            bar.set_postfix(loss=f"{epoch_loss:.4f}", ndcg10=f"{score:.4f}")
            if score > best.best_valid_ndcg10:
                best.best_epoch, best.best_valid_ndcg10 = epoch, score
                best_state = copy.deepcopy(model.state_dict())
                stale = 0
            else:
                stale += 1
                if stale >= config.patience:
                    logger.info("early stop at epoch %d (best %d)", epoch, best.best_epoch)
        else:
            bar.set_postfix(loss=f"{epoch_loss:.4f}")
        if checkpoint is not None:
            save_resumable(checkpoint, {
                "run_key": run_key, "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(), "best_state": best_state, "stale": stale,
                "best_epoch": best.best_epoch, "best_valid_ndcg10": best.best_valid_ndcg10,
                "log": best.log,
            })  # fmt: skip
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    best.seconds = time.perf_counter() - started
    logger.info(
        "SASRec: best epoch %d, valid NDCG@10 %.4f, %.1f s",
        best.best_epoch,
        best.best_valid_ndcg10,
        best.seconds,
    )
    return best


def _load_checkpoint(
    path: Path | None, run_key: str, device: torch.device
) -> dict[str, Any] | None:
    """The saved state at `path` when it belongs to this run, else None (a fresh start)."""
    saved = load_resumable(path, device)
    if saved is None:
        return None
    if saved.get("run_key") != run_key:
        logger.info("SASRec: %s belongs to another run (config, data or seed): not resumed", path)
        return None
    for key in ("generator", "torch_rng"):  # RNG states are CPU byte tensors
        saved[key] = saved[key].cpu()
    return saved
