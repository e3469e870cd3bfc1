"""Batch scoring throughput on Ray (1 and 2 actors) against the plain loop, on ML-100K.

Each configuration scores every user (943) after their whole history and keeps the top 100
(`mmsrarec score`), one torch thread per worker, on a local Ray cluster of 2 CPUs. Rows are
checked equal to the plain loop's. Reported per method and configuration: start (Ray actors
started, dataset loaded, method fitted or reloaded), scoring seconds, users per second of
scoring and of the whole run, and Ray's overhead = whole run / plain loop's whole run.

    python benchmarks/ray_scoring.py --run-dir runs -m item-knn -m sasrec

`--run-dir` must hold trained checkpoints for the learned methods (`make demo` writes them
to ./runs); a method without one is trained first by the plain loop (not timed as scoring).
Writes `benchmarks/ray_results.json` and `benchmarks/RAY.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(settings, method: str, users: list[str], dataset) -> tuple[list, dict]:
    """The plain loop: build, fit (reload), score every user."""
    from mmsrarec.evaluation.batch_scoring import score_users
    from mmsrarec.evaluation.methods import build_method

    start = time.perf_counter()
    recommender = build_method(method, settings)
    recommender.fit(dataset, settings.seeds[0])
    fitted = time.perf_counter()
    rows = score_users(recommender, dataset, users)
    done = time.perf_counter()
    return rows, {"start_s": fitted - start, "score_s": done - fitted}


def measure_ray(settings, method: str, users: list[str]) -> tuple[list, dict]:
    from mmsrarec.evaluation.batch_scoring import user_batches
    from mmsrarec.evaluation.distributed import fitted_actors, map_ordered

    start = time.perf_counter()
    with fitted_actors(settings, method, settings.seeds[0]) as actors:
        fitted = time.perf_counter()
        parts = map_ordered(
            actors, lambda actor, batch: actor.score.remote(batch, 100), user_batches(users)
        )
        done = time.perf_counter()
    return [row for part in parts for row in part], {
        "start_s": fitted - start,
        "score_s": done - fitted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs"))
    parser.add_argument("-m", "--method", action="append", default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray
    import torch

    from mmsrarec.config import apply_offline_env, load_settings
    from mmsrarec.data import load_dataset, prepare_dataset

    torch.set_num_threads(1)
    settings = load_settings(None, run_dir=args.run_dir, threads=1, seeds=[0])
    apply_offline_env(settings)
    if not (settings.dataset_dir / "manifest.json").exists():
        prepare_dataset("ml-100k", settings.datasets_dir)
    dataset = load_dataset(settings.dataset_dir)
    users = list(dataset.users)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results = []
    for method in args.method or ["item-knn", "sasrec"]:
        measure(settings, method, users[:1], dataset)  # trains once if no checkpoint yet
        local_rows, local = measure(settings, method, users, dataset)
        rows = [{"method": method, "config": "plain loop", **local}]
        for workers in (1, 2):
            on_ray = settings.model_copy(update={"ray_address": "local", "ray_workers": workers})
            ray_rows, timing = measure_ray(on_ray, method, users)
            if ray_rows != local_rows:
                raise SystemExit(f"{method}: Ray with {workers} worker(s) differs from the loop")
            rows.append({"method": method, "config": f"Ray, {workers} worker(s)", **timing})
        for row in rows:
            total = row["start_s"] + row["score_s"]
            row |= {
                "total_s": total,
                "users_per_s_scoring": len(users) / row["score_s"],
                "users_per_s_total": len(users) / total,
                "overhead_vs_loop": total / (local["start_s"] + local["score_s"]),
                "identical_to_loop": True,
            }
            print(json.dumps(row))
        results += rows
    ray.shutdown()
    meta = {
        "users": len(users),
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "command": "python benchmarks/ray_scoring.py --run-dir runs "
        + " ".join(f"-m {m}" for m in args.method or ["item-knn", "sasrec"]),
    }
    (HERE / "ray_results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    lines = [
        "# Batch scoring on Ray",
        "",
        f"`{meta['command']}` (run with a copy of `make demo`'s runs/) — ML-100K, "
        f"{meta['users']} users, top 100 each, 1 torch thread "
        f"per worker, local Ray {meta['ray']} cluster of 2 CPUs on a {meta['cpus']}-core "
        "machine shared with other jobs. Every Ray run's rows equal the plain loop's.",
        "",
        "| method | run | start s | scoring s | users/s (scoring) | users/s (total) | "
        "total / plain loop |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results:
        lines.append(
            f"| {row['method']} | {row['config']} | {row['start_s']:.1f} | {row['score_s']:.1f} "
            f"| {row['users_per_s_scoring']:.0f} | {row['users_per_s_total']:.0f} "
            f"| {row['overhead_vs_loop']:.2f} |"
        )
    (HERE / "RAY.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
