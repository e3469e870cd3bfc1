"""Data-parallel SASRec training on Ray Train (`TorchTrainer`, gloo on CPU).

Each of `workers` processes builds the same model from the same seed, takes an equal share of
the training windows (window i goes to worker i mod workers; the last few are dropped so that
every share has as many), and runs `sasrec_trainer.train_epoch` on it with `batch_size`
windows per step. Between each backward and optimizer step the gradients are averaged over
the workers (one all-reduce of them all, flattened), so the replicas stay identical and a
step sees `workers x batch_size` windows: compare with one process at that batch size. The
reported loss per epoch is the workers' mean. Ray is an extra (`pip install -e '.[ray]'`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from mmsrarec.data import load_dataset
from mmsrarec.errors import ConfigError
from mmsrarec.models.sasrec import SASRec, SASRecConfig
from mmsrarec.training.sasrec_trainer import EpochSetup, train_epoch


@dataclass
class ParallelRun:
    """What `train_sasrec_on_ray` measured.

    Attributes:
        workers: data-parallel workers.
        log: per epoch: `epoch`, `loss` (mean over workers), `seconds`, `sequences_per_s`
            (training windows per second, per worker).
    """

    workers: int
    log: list[dict[str, float]] = field(default_factory=list)


def shard(windows: list[list[int]], rank: int, workers: int) -> list[list[int]]:
    """Worker `rank`'s windows: every `workers`-th from `rank`, all shards equally long."""
    usable = len(windows) - len(windows) % workers
    return windows[rank:usable:workers]


def _all_reduce_mean(model: torch.nn.Module, workers: int) -> None:
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= workers
    offset = 0
    for parameter, grad in zip(model.parameters(), grads, strict=True):
        parameter.grad = flat[offset : offset + grad.numel()].view_as(grad).clone()
        offset += grad.numel()


def _worker(loop: dict[str, Any]) -> list[dict[str, float]]:
    """The loop each Ray Train worker runs (one torch thread)."""
    import torch.distributed as dist
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
    log = []
    for epoch in range(1, loop["epochs"] + 1):
        started = time.perf_counter()
        loss = train_epoch(model, setup, optimizer, config, generator,
                           step=lambda: _all_reduce_mean(model, workers))  # fmt: skip
        seconds = time.perf_counter() - started
        mean = torch.tensor([loss])
        dist.all_reduce(mean)
        log.append({"epoch": epoch, "loss": float(mean) / workers, "seconds": seconds,
                    "sequences_per_s": len(setup.windows) / seconds})  # fmt: skip
    return log  # Ray Train hands worker 0's return value to the driver


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
    if workers < 1 or epochs < 1:
        raise ConfigError("data-parallel training needs `workers` >= 1 and `epochs` >= 1")
    try:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError:
        raise ConfigError("data-parallel training needs Ray: pip install -e '.[ray]'") from None
    loop = {"dataset_dir": str(dataset_dir), "config": config.to_dict(), "seed": seed,
            "epochs": epochs}  # fmt: skip
    trainer = TorchTrainer(
        _worker,
        train_loop_config=loop,
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}
        ),  # fmt: skip
        run_config=RunConfig(storage_path=str(storage.resolve()), name=f"sasrec-w{workers}"),
    )
    result = trainer.fit()
    return ParallelRun(workers, result.return_value)
