"""Sampled softmax (logQ-corrected, mixed negatives) against the full softmax, SASRec on
ML-100K: full-ranking NDCG@10 and HR@10 on all 943 test users, one seed.

    python benchmarks/sampled_softmax.py --seed 0 --negatives 256

Trains `SASRecConfig(loss="ce")` (the default, reloaded when `--run-dir` holds it) and
`SASRecConfig(loss="sampled", sampled_negatives=N)` for each N, with one torch thread, and
writes `benchmarks/scale/sampled_softmax.json`. The target: within 0.005 NDCG@10 of `ce`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--negatives", type=int, action="append")
    parser.add_argument("--run-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=HERE / "scale" / "sampled_softmax.json")
    args = parser.parse_args()
    import torch

    from mmsrarec.config import load_settings
    from mmsrarec.data import load_dataset, prepare_dataset
    from mmsrarec.evaluation.protocols import evaluate_full
    from mmsrarec.models.sasrec import SASRecConfig
    from mmsrarec.recommenders.sasrec import SASRecRecommender

    torch.set_num_threads(1)
    settings = load_settings(run_dir=args.run_dir)
    dataset = load_dataset(prepare_dataset("ml-100k", settings.datasets_dir)[0])
    rows = []
    configs = [("ce", SASRecConfig())]
    configs += [
        (f"sampled-{n}", replace(SASRecConfig(), loss="sampled", sampled_negatives=n))
        for n in args.negatives or [256]
    ]
    for label, config in configs:
        folder = args.run_dir / "sasrec" / "ml-100k" if label == "ce" else (
            args.run_dir / "sasrec-loss" / label)  # fmt: skip
        recommender = SASRecRecommender(config, save_dir=folder, progress=False)
        started = time.perf_counter()
        recommender.fit(dataset, args.seed)
        result = evaluate_full(recommender, dataset, "test")
        rows.append({
            "loss": label, "seed": args.seed, "users": len(result.users),
            "ndcg10": result.metrics["NDCG@10"], "hr10": result.metrics["HR@10"],
            "best_epoch": recommender.meta["best_epoch"],
            "train_seconds": recommender.meta["train_seconds"],
            "wall_seconds": time.perf_counter() - started,
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["ndcg10"]
    for row in rows:
        row["ndcg10_minus_ce"] = row["ndcg10"] - base
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"load_average": os.getloadavg(), "threads": 1, "rows": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
