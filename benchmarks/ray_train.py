"""Data-parallel SASRec on Ray Train against one process, on ML-100K: the loss curve and the
training throughput per worker on a local cluster of 2 workers (one CPU thread each).

    python benchmarks/ray_train.py --epochs 5

Runs, all from seed 0 with the default `SASRecConfig` otherwise:
- one process, 64 windows per step (the default), seeds 0 and 1 (the run-to-run spread);
- Ray Train, 1 worker x 64 windows per step (Ray's overhead);
- Ray Train, 2 workers x 32 windows per step (64 per step in all, gradients averaged).
Writes `benchmarks/scale/ray_train.json`. The machine is shared: the load average is recorded.

    python benchmarks/ray_train.py --model llm --windows 64

The LLM recommender (default `ItemLMConfig`, `settings.model`'s LLM, random ID and text
features of the real sizes in place of SASRec's embeddings and the LLM's text features: they
do not change a step's cost) for one epoch of at most `--windows` windows per worker: Ray
Train with 1 worker x 32 windows per step, then 2 workers x 16. Writes
`benchmarks/scale/ray_train_llm.json` (sequences/s per worker, the loss, the replica gap).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one_process(dataset, config, seed: int, epochs: int) -> list[dict]:
    import torch

    from mmsrarec.models.sasrec import SASRec
    from mmsrarec.training.sasrec_trainer import EpochSetup, train_epoch

    torch.manual_seed(seed)
    model = SASRec(dataset.n_items, config)
    setup = EpochSetup.for_dataset(dataset, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(seed)
    log = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        loss = train_epoch(model, setup, optimizer, config, generator)
        seconds = time.perf_counter() - started
        log.append({"epoch": epoch, "loss": loss, "seconds": seconds,
                    "sequences_per_s": len(setup.windows) / seconds})  # fmt: skip
    return log


def build_item_lm(config, n_items: int, model: str):
    """The LLM recommender's model with random item features (a Ray worker calls it)."""
    import torch

    from mmsrarec.config import load_settings
    from mmsrarec.models import load_llm
    from mmsrarec.models.item_lm import ItemLM, add_lora, truncated_backbone
    from mmsrarec.models.sasrec import SASRecConfig

    llm = load_llm(model, load_settings())
    backbone = add_lora(
        truncated_backbone(llm.model, config.layers, config.backbone), config.lora_rank
    )
    hidden = llm.model.config.hidden_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randn(n_items + 1, SASRecConfig().hidden, generator=generator)
    text = torch.randn(n_items + 1, hidden, generator=generator)
    return ItemLM(backbone, hidden, ids, text, config.item_tokens, config.dropout,
                  config.text_init, text_bias=bool(config.id_dropout))  # fmt: skip


def main_llm(windows: int, out: Path) -> None:
    import functools

    import ray

    from mmsrarec.config import load_settings
    from mmsrarec.data import load_dataset, prepare_dataset
    from mmsrarec.models.item_lm import ItemLMConfig
    from mmsrarec.training.ray_train import train_item_lm_on_ray

    settings = load_settings()
    folder = prepare_dataset("ml-100k", settings.datasets_dir)[0]
    dataset = load_dataset(folder)
    config = ItemLMConfig().resolved(bool(dataset.cold))
    build = functools.partial(build_item_lm, config, dataset.n_items, settings.model)
    runs = {"model": settings.model, "windows_per_worker": windows,
            "load_average_start": os.getloadavg()}  # fmt: skip
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})  # fmt: skip
    for workers, batch in ((1, 32), (2, 16)):
        started = time.perf_counter()
        run = train_item_lm_on_ray(build, folder, replace(config, batch_size=batch), 0, workers,
                                   1, Path("/tmp/mmsrarec-ray-train"), windows)  # fmt: skip
        runs[f"ray_{workers}_workers"] = run.log
        runs[f"ray_{workers}_workers_wall_seconds"] = time.perf_counter() - started
        print(json.dumps(run.log[-1]), flush=True)
    ray.shutdown()
    runs["load_average_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["sasrec", "llm"], default="sasrec")
    parser.add_argument("--epochs", type=int, default=5, help="SASRec's epochs")
    parser.add_argument("--windows", type=int, default=64, help="LLM: windows per worker")
    parser.add_argument("--out", type=Path, help="default: scale/ray_train[_llm].json")
    args = parser.parse_args()
    if args.model == "llm":
        main_llm(args.windows, args.out or HERE / "scale" / "ray_train_llm.json")
        return
    args.out = args.out or HERE / "scale" / "ray_train.json"
    import ray
    import torch

    from mmsrarec.config import load_settings
    from mmsrarec.data import load_dataset, prepare_dataset
    from mmsrarec.models.sasrec import SASRecConfig
    from mmsrarec.training.ray_train import train_sasrec_on_ray

    torch.set_num_threads(1)
    folder = prepare_dataset("ml-100k", load_settings().datasets_dir)[0]
    dataset = load_dataset(folder)
    config = SASRecConfig()
    runs = {"load_average_start": os.getloadavg()}
    for seed in (0, 1):
        runs[f"one_process_seed{seed}"] = one_process(dataset, config, seed, args.epochs)
        print(json.dumps(runs[f"one_process_seed{seed}"][-1]), flush=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})  # fmt: skip
    storage = Path("/tmp/mmsrarec-ray-train")
    for workers, batch in ((1, 64), (2, 32)):
        started = time.perf_counter()
        run = train_sasrec_on_ray(folder, replace(config, batch_size=batch), 0, workers,
                                  args.epochs, storage)  # fmt: skip
        runs[f"ray_{workers}_workers"] = run.log
        runs[f"ray_{workers}_workers_wall_seconds"] = time.perf_counter() - started
        print(json.dumps(run.log[-1]), flush=True)
    ray.shutdown()
    single = [row["loss"] for row in runs["one_process_seed0"]]
    spread = [
        abs(a["loss"] - b["loss"]) / b["loss"]
        for a, b in zip(runs["one_process_seed1"], runs["one_process_seed0"], strict=True)
    ]
    parallel = [abs(row["loss"] - s) / s for row, s in zip(runs["ray_2_workers"], single,
                                                            strict=True)]  # fmt: skip
    runs["max_relative_loss_gap"] = {"two_workers_vs_one_process": max(parallel),
                                     "seed1_vs_seed0_one_process": max(spread)}  # fmt: skip
    runs["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
