"""The popularity-bias control's trade-off: NDCG@10 against the tail's share of the top 10,
catalogue coverage and the Gini index of exposure, over gamma (`recommenders.debias`), on
every ML-100K user (seed 0, full catalog ranking), and the default chosen on validation.

    python benchmarks/debias.py --method mmsrarec --threads 1

Each user's catalog scores are computed once per stage; `Debiased` subtracts
`gamma * log(1 + training count)`, so every gamma re-ranks the same scores. Per gamma:

- NDCG@10 of the held-out item (the full protocol: the history excluded, pessimistic ties);
- tail share: the share of the top-10 items outside the head, the most popular 20% of the
  catalogue by training count (Pareto's short head);
- coverage: the share of the catalogue in at least one user's top 10;
- Gini of exposure: the Gini index of how often each catalogue item is in a top 10 (0 = all
  equally often, 1 = one item everywhere).

The default is the largest gamma of the grid whose validation NDCG@10 is at most
`BUDGET / 2` below gamma = 0's: half of the allowed cost (0.005), the other half a margin for
the test users' noise. On the test stage the default is compared with gamma = 0 per user
(paired 95% bootstrap intervals). Writes `benchmarks/explanations/debias.json` and
`debias.png`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "explanations"
GRID = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0]
BUDGET = 0.005  # NDCG@10 the default may cost (issue 23)
HEAD = 0.2  # the most popular share of the catalogue that is the head
K = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="mmsrarec", help="A catalog recommender's name.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument("--out", type=Path, default=OUT / "debias.json")
    return parser.parse_args()


def stage_scores(ranker, dataset, stage: str) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Catalog scores [users, n_items + 1] (history -inf), targets, histories."""
    from mmsrarec.recommenders.base import Query

    users = list(dataset.eval_users)
    rows, histories = [], []
    for start in range(0, len(users), 128):
        queries = [Query.from_dataset(dataset, u, stage, sampled=False)
                   for u in users[start : start + 128]]  # fmt: skip
        rows.append(np.asarray(ranker.score_catalog(queries), dtype=np.float64))
        histories += [list(q.history) for q in queries]
    scores = np.concatenate(rows)
    scores[:, 0] = -np.inf
    targets = np.array([dataset.target(u, stage) for u in users])
    return scores, targets, histories


def gini(counts: np.ndarray) -> float:
    """Gini index of non-negative counts: sum_i (2i - n - 1) x_(i) / (n sum x), sorted."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    return float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * x.sum()))


def at_gamma(scores, targets, histories, log_pop, tail, gamma: float) -> dict:
    """Per-user NDCG@10 and tail share, and the list-level coverage and Gini."""
    from mmsrarec.metrics import ranks_from_scores

    shifted = scores - gamma * log_pop[None, :]
    kept = shifted[np.arange(len(targets)), targets]
    for row, history in enumerate(histories):
        shifted[row, history] = -np.inf
    shifted[np.arange(len(targets)), targets] = kept
    ranks = ranks_from_scores(shifted, targets)
    ndcg = np.where(ranks < K, 1.0 / np.log2(ranks + 2.0), 0.0)
    for row, history in enumerate(histories):  # the lists shown: never a seen item
        shifted[row, history] = -np.inf
    top = np.argsort(-shifted, axis=1, kind="stable")[:, :K]
    exposure = np.bincount(top.ravel(), minlength=len(log_pop))[1:]
    return {"ndcg": ndcg, "tail": tail[top].mean(axis=1),
            "coverage": float((exposure > 0).mean()), "gini": gini(exposure)}  # fmt: skip


def plot(rows: list[dict], default: float, path: Path, method: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmsrarec.storage import atomic_write_bytes

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, key, label in zip(axes, ("tail_share", "coverage", "gini"),
                              ("tail share of the top 10", "catalogue coverage",
                               "Gini of exposure"), strict=True):  # fmt: skip
        for stage, style in (("test", "o-"), ("valid", "s--")):
            ax.plot([r[stage][key] for r in rows], [r[stage]["ndcg10"] for r in rows], style,
                    markersize=3, label=stage, alpha=1.0 if stage == "test" else 0.5)  # fmt: skip
        for r in rows:
            ax.annotate(f"{r['gamma']:g}", (r["test"][key], r["test"]["ndcg10"]), fontsize=6,
                        xytext=(2, 2), textcoords="offset points")  # fmt: skip
        chosen = next(r for r in rows if r["gamma"] == default)
        ax.plot(chosen["test"][key], chosen["test"]["ndcg10"], "r*", markersize=12,
                label=f"default gamma={default:g}")  # fmt: skip
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("NDCG@10 (full ranking)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{method}: score - gamma * log(1 + training count), 943 ML-100K users, seed 0",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from mmsrarec.config import load_settings
    from mmsrarec.data import load_dataset
    from mmsrarec.metrics import paired_interval
    from mmsrarec.recommenders.debias import log_popularity
    from mmsrarec.recommenders.methods import build_recommender
    from mmsrarec.storage import atomic_write_json

    torch.set_num_threads(args.threads)
    settings = load_settings()
    dataset = load_dataset(settings.dataset_dir)
    ranker = build_recommender(args.method, settings)
    ranker.fit(dataset, 0)
    log_pop = log_popularity(dataset)
    counts = np.asarray(dataset.train_popularity())
    head = np.argsort(-counts[1:], kind="stable")[: int(round(HEAD * dataset.n_items))] + 1
    tail = np.ones(dataset.n_items + 1, dtype=bool)
    tail[head] = False
    tail[0] = False
    per_stage = {stage: stage_scores(ranker, dataset, stage) for stage in ("valid", "test")}
    raw = {stage: {g: at_gamma(*per_stage[stage], log_pop, tail, g) for g in GRID}
           for stage in per_stage}  # fmt: skip
    rows = [{"gamma": g, **{stage: {"ndcg10": float(raw[stage][g]["ndcg"].mean()),
                                    "tail_share": float(raw[stage][g]["tail"].mean()),
                                    "coverage": raw[stage][g]["coverage"],
                                    "gini": raw[stage][g]["gini"]} for stage in raw}}
            for g in GRID]  # fmt: skip
    base_valid = rows[0]["valid"]["ndcg10"]
    default = max(r["gamma"] for r in rows if r["valid"]["ndcg10"] >= base_valid - BUDGET / 2)
    chosen, base = raw["test"][default], raw["test"][0.0]
    report = {
        "command": "python benchmarks/debias.py " + " ".join(sys.argv[1:]),
        "method": args.method, "seed": 0, "users": len(dataset.eval_users),
        "tail": f"items outside the {HEAD:.0%} most popular of the catalogue by training count",
        "rule": f"largest gamma whose validation NDCG@10 is at most {BUDGET / 2} below gamma=0",
        "default_gamma": default,
        "test_at_default": {
            "ndcg10_diff": paired_interval(chosen["ndcg"], base["ndcg"]),
            "tail_share_diff": paired_interval(chosen["tail"], base["tail"]),
            "coverage": [rows[0]["test"]["coverage"], chosen["coverage"]],
            "gini": [rows[0]["test"]["gini"], chosen["gini"]],
        },
        "grid": rows,
    }  # fmt: skip
    atomic_write_json(args.out, report)
    plot(rows, default, args.out.with_suffix(".png"), args.method)
    print(f"default gamma {default}:", report["test_at_default"])


if __name__ == "__main__":
    main()
