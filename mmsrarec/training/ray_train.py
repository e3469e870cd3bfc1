"""Data-parallel SASRec and LLM recommender training on Ray Train (`TorchTrainer`, gloo on CPU).

Each of `workers` processes builds the same model from the same seed, takes an equal share of
the training windows (window i goes to worker i mod workers; the last few are dropped so that
every share has as many), and runs `sasrec_trainer.train_epoch` on it with `batch_size`
windows per step. Between each backward and optimizer step the gradients are averaged over
the workers (one all-reduce of them all, flattened), so the replicas stay identical and a
step sees `workers x batch_size` windows: compare with one process at that batch size. The
reported loss per epoch is the workers' mean. Ray is an extra (`pip install -e '.[ray]'`).

The LLM recommender (`train_item_lm_on_ray`) runs the same way over `item_lm_trainer`'s
windows and `train_item_lm_epoch`, averaging only the trainable parameters' gradients (LoRA
and the item parts), before the gradient clipping as DDP does. It trains without retrieval
tokens and without validation: it measures the loss curve and the throughput.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from mmsrarec.data import load_dataset
from mmsrarec.errors import ConfigError
from mmsrarec.models.item_lm import ItemLM, ItemLMConfig
from mmsrarec.models.sasrec import SASRec, SASRecConfig
from mmsrarec.training.item_lm_trainer import (
    Sampled,
    loss_for,
    optimizers_for,
    train_item_lm_epoch,
    user_windows,
)
from mmsrarec.training.losses import sampling_log_q
from mmsrarec.training.sasrec_trainer import EpochSetup, train_epoch


@dataclass
class ParallelRun:
    """What `train_sasrec_on_ray` measured.

    Attributes:
        workers: data-parallel workers.
        log: per epoch: `epoch`, `loss` (mean over workers), `seconds`, `sequences_per_s`
            (training windows per second, per worker); for the LLM recommender also
            `replica_gap`, the largest difference of a trainable weight between workers.
    """

    workers: int
    log: list[dict[str, float]] = field(default_factory=list)


Row = TypeVar("Row")


def shard(windows: list[Row], rank: int, workers: int) -> list[Row]:
    """Worker `rank`'s windows: every `workers`-th from `rank`, all shards equally long."""
    usable = len(windows) - len(windows) % workers
    return windows[rank:usable:workers]


def _all_reduce_mean(params: list[torch.nn.Parameter], workers: int) -> None:
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= workers
    offset = 0
    for parameter, grad in zip(params, grads, strict=True):
        parameter.grad = flat[offset : offset + grad.numel()].view_as(grad).clone()
        offset += grad.numel()


def _worker(loop: dict[str, Any]) -> list[dict[str, float]]:
    """The loop each Ray Train worker runs (one torch thread)."""
    from ray import train

    torch.set_num_threads(1)
    context = train.get_context()
    rank, workers = context.get_world_rank(), context.get_world_size()
    dataset = load_dataset(Path(loop["dataset_dir"]))
    config = SASRecConfig(**loop["config"])
    torch.manual_seed(loop["seed"])  # the same initial weights on every worker
    model = SASRec(dataset.n_items, config)
    setup = EpochSetup.for_dataset(dataset, config)
    setup = replace(setup, windows=shard(setup.windows, rank, workers))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)  # fmt: skip
    generator = torch.Generator().manual_seed(loop["seed"] * 1000 + rank)
    params = list(model.parameters())
    log = []
    for epoch in range(1, loop["epochs"] + 1):
        started = time.perf_counter()
        loss = train_epoch(model, setup, optimizer, config, generator,
                           step=lambda: _all_reduce_mean(params, workers))  # fmt: skip
        seconds = time.perf_counter() - started
        log.append(_epoch_row(epoch, loss, seconds, len(setup.windows), workers))
    return log  # Ray Train hands worker 0's return value to the driver


def _epoch_row(epoch: int, loss: float, seconds: float, windows: int, workers: int) -> dict:
    import torch.distributed as dist

    mean = torch.tensor([loss])
    dist.all_reduce(mean)
    return {"epoch": epoch, "loss": float(mean) / workers, "seconds": seconds,
            "sequences_per_s": windows / seconds}  # fmt: skip


def _replica_gap(params: list[torch.nn.Parameter]) -> float:
    """The largest difference between a worker's weights and worker 0's, over all workers."""
    import torch.distributed as dist

    mine = torch.cat([p.detach().reshape(-1) for p in params])
    first = mine.clone()
    dist.broadcast(first, src=0)
    gap = (mine - first).abs().max().reshape(1)
    dist.all_reduce(gap, op=dist.ReduceOp.MAX)
    return float(gap)


def _item_lm_worker(loop: dict[str, Any]) -> list[dict[str, float]]:
    """The loop each Ray Train worker runs for the LLM recommender (one torch thread)."""
    from ray import train

    torch.set_num_threads(1)
    context = train.get_context()
    rank, workers = context.get_world_rank(), context.get_world_size()
    dataset = load_dataset(Path(loop["dataset_dir"]))
    config: ItemLMConfig = loop["config"]
    torch.manual_seed(loop["seed"])  # `build` draws the same initial weights on every worker
    model: ItemLM = loop["build"]()
    windows = shard(user_windows(dataset.train_sequences(), config.max_len), rank, workers)
    windows = windows[: loop["max_windows"]]
    optimizers = optimizers_for(model, config, len(windows))
    params = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(loop["seed"] * 1000 + rank)
    sampled = None
    if loss_for(config, dataset.n_items) == "sampled":
        log_q = sampling_log_q(dataset.train_popularity())
        sampled = Sampled(log_q, config.sampled_negatives, generator)
    id_dropout = config.id_dropout_for(bool(dataset.cold))
    log = []
    for epoch in range(1, loop["epochs"] + 1):
        started = time.perf_counter()
        loss = train_item_lm_epoch(model, windows, optimizers, config, generator, id_dropout,
                                   sampled, lambda: _all_reduce_mean(params, workers))  # fmt: skip
        row = _epoch_row(epoch, loss, time.perf_counter() - started, len(windows), workers)
        log.append({**row, "replica_gap": _replica_gap(params)})
    return log


def train_item_lm_on_ray(
    build: Callable[[], ItemLM],
    dataset_dir: Path,
    config: ItemLMConfig,
    seed: int,
    workers: int,
    epochs: int,
    storage: Path,
    max_windows: int | None = None,
) -> ParallelRun:
    """Train the LLM recommender's model for `epochs` on `workers` Ray Train workers, each
    building its replica with `build()` after seeding torch with `seed` (it must be picklable
    and load only what every worker can reach); returns the per-epoch log of worker 0.

    Args:
        max_windows: at most this many windows per worker and epoch (a bounded benchmark).

    Raises:
        ConfigError: Ray Train is not installed, or `workers`/`epochs` below 1.
    """
    loop = {"dataset_dir": str(dataset_dir), "config": config, "seed": seed, "epochs": epochs,
            "build": build, "max_windows": max_windows}  # fmt: skip
    return _fit(_item_lm_worker, loop, workers, epochs, storage, f"item-lm-w{workers}")


def train_sasrec_on_ray(
    dataset_dir: Path,
    config: SASRecConfig,
    seed: int,
    workers: int,
    epochs: int,
    storage: Path,
) -> ParallelRun:
    """Train SASRec for `epochs` on `workers` Ray Train workers (the Ray cluster the driver
    is connected to, or a local one); returns the per-epoch log of worker 0.

    Raises:
        ConfigError: Ray Train is not installed, or `workers`/`epochs` below 1.
    """
    loop = {"dataset_dir": str(dataset_dir), "config": config.to_dict(), "seed": seed,
            "epochs": epochs}  # fmt: skip
    return _fit(_worker, loop, workers, epochs, storage, f"sasrec-w{workers}")


def _fit(worker: Callable, loop: dict, workers: int, epochs: int, storage: Path, name: str):
    if workers < 1 or epochs < 1:
        raise ConfigError("data-parallel training needs `workers` >= 1 and `epochs` >= 1")
    try:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError:
        raise ConfigError("data-parallel training needs Ray: pip install -e '.[ray]'") from None
    trainer = TorchTrainer(
        worker,
        train_loop_config=loop,
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}
        ),  # fmt: skip
        run_config=RunConfig(storage_path=str(storage.resolve()), name=name),
    )
    return ParallelRun(workers, trainer.fit().return_value)
