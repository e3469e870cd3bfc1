"""The accuracy table on ML-100K: baselines, SASRec, the LLM graph (zero-shot, trained, and
ablations), sampled 1+20 and full ranking (two-stage: SASRec top-50, the LLM re-ranks).

    python benchmarks/accuracy.py                      # everything, all users, 3 seeds
    python benchmarks/accuracy.py --llm-users 50 --llm-seeds 1   # what fits on 2 CPU cores

Prerequisites: `mmsrarec data prepare --dataset ml-100k`, `mmsrarec train summarizer`,
`mmsrarec train recommender` (the adapters under `<run_dir>/train/`). Baselines and SASRec
always run on every test user over `--seeds`; the LLM rows on `--llm-users` test users (a
seeded sample; 0 = all) over the first `--llm-seeds` seeds, and SASRec is evaluated again on
exactly those users so that the target comparison (NDCG@5, sampled) is on the same queries.

Writes `<out>/results.json` (metrics, per-seed values, wall times, the command, the machine)
and `<out>/rankings/<table>.<method>.jsonl.gz` (first seed of each method).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINES = ["item-knn", "sasrec"]
LLM_METHODS = ["mmsrarec-yes-no-zeroshot", "mmsrarec-yes-no", "mmsrarec-yes-no-no-retrieval",
               "mmsrarec-yes-no-no-rl", "mmsrarec-yes-no-no-sft"]  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="Seeds of the baseline rows.")
    parser.add_argument("--llm-users", type=int, default=0, help="Test users of LLM rows (0=all).")
    parser.add_argument("--llm-seeds", type=int, default=3, help="Seeds of the LLM rows.")
    parser.add_argument("--llm-methods", default=",".join(LLM_METHODS), help="LLM rows.")
    parser.add_argument(
        "--full-llm-users",
        type=int,
        default=None,
        help="Users of the two-stage full-ranking LLM rows (default --llm-users).",
    )
    parser.add_argument(
        "--full-llm-methods", default="mmsrarec-yes-no", help="Two-stage re-rankers."
    )
    parser.add_argument("--skip", default="", help="Comma list of tables to skip: "
                        "sampled,sampled-llm,full,full-llm")  # fmt: skip
    parser.add_argument("--tag", default="", help="Suffix of the LLM tables' names (e.g. -100).")
    parser.add_argument("--out", type=Path, default=HERE / "accuracy")
    parser.add_argument("--resume", action="store_true", help="Keep the seeds that a killed "
                        "run of the same command finished (in <out>/partial/).")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def machine() -> dict:
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "cuda": cuda}  # fmt: skip


def export(out: Path, table: str, results, dataset) -> dict[str, str]:
    """gzip JSONL rankings of each method's first seed."""
    from mmsrarec.evaluation.harness import write_rankings

    paths = {}
    for result in results:
        plain = out / "rankings" / f"{table}.{result.method}.jsonl"
        write_rankings(plain, result.first, dataset)
        with plain.open("rb") as src, gzip.open(f"{plain}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        plain.unlink()
        paths[result.method] = str(Path(f"{plain}.gz").relative_to(out))
    return paths


def read_export(path: Path) -> dict[str, tuple[float, list[float]]]:
    """Per user of a sampled rankings export: (target's score, the other candidates' scores)."""
    users = {}
    with gzip.open(path, "rt", encoding="utf-8") as rows:
        for line in rows:
            row = json.loads(line)
            scores = row["scores"]  # sampled: every candidate has a finite score
            at = row["candidates"].index(row["target"])
            users[row["user_id"]] = (scores[at], scores[:at] + scores[at + 1 :])
    return users


def paired_against(out: Path, table: dict, reference: str = "sasrec", draws: int = 2000) -> dict:
    """Per method: mean NDCG@5 difference to `reference` on the same users (first seed) with
    a 95% bootstrap interval over users, the standard error of the method's own NDCG@5, and
    its mean score on targets and on negatives (does it separate them at all?)."""
    import numpy as np

    from mmsrarec.metrics import ndcg, target_rank

    def per_user_ndcg5(export: dict) -> np.ndarray:
        ranks = [target_rank(export[u][0], np.array(export[u][1])) for u in users]
        return np.array([ndcg(np.array([rank]), 5) for rank in ranks])

    paths = {m: row["rankings"] for m, row in table["methods"].items() if row["rankings"]}
    reference_export = read_export(out / paths[reference])
    users = sorted(reference_export)
    ref = per_user_ndcg5(reference_export)
    picks = np.random.default_rng(0).integers(0, len(users), size=(draws, len(users)))
    paired = {}
    for method, path in paths.items():
        export = read_export(out / path)
        own = per_user_ndcg5(export)
        diff = own - ref
        means = diff[picks].mean(axis=1)
        paired[method] = {
            "ndcg5": float(own.mean()),
            "ndcg5_se": float(own.std(ddof=1) / np.sqrt(len(users))),
            "diff": float(diff.mean()),
            "diff_ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
            "mean_score": {
                "target": float(np.mean([export[u][0] for u in users])),
                "negative": float(np.mean([s for u in users for s in export[u][1]])),
                "range": float(
                    np.mean([max(e[0], *e[1]) - min(e[0], *e[1]) for e in map(export.get, users)])
                ),  # fmt: skip
            },
        }
    return {"reference": reference, "users": len(users), "metric": "NDCG@5", "methods": paired}


def run_table(name, methods, builders, dataset, seeds, protocol, users, out, report,
              resume, settings) -> None:  # fmt: skip
    """Evaluate `methods` (name -> builder) and add the table to `report` (saved each time).
    Finished seeds go to `<out>/partial/<name>/`; `resume` reuses them, else they are cleared;
    a trained scorer's seeds are reused only under the same `resume_key`."""
    from rich.console import Console

    from mmsrarec.evaluation.harness import build_report, evaluate_method, results_table
    from mmsrarec.evaluation.methods import resume_key

    done_dir = out / "partial" / name
    if not resume:
        shutil.rmtree(done_dir, ignore_errors=True)
    done_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = []
    for method in methods:  # the table is saved after every method: partial runs keep rows
        key = resume_key(method.split("@")[0], settings, dataset)
        results.append(evaluate_method(method, builders[method], dataset, seeds, protocol,
                                       "test", users, done_dir, key=key))  # fmt: skip
        rankings = export(out, name, results[-1:], dataset) | report.get("_rankings", {})
        report["_rankings"] = rankings
        table = build_report(results, dataset, protocol, "test", seeds, rankings)
        table["wall_s"] = time.perf_counter() - start
        table["command"] = report["command"]  # tables may come from different invocations
        table["complete"] = len(results) == len(methods)
        if protocol.value == "sampled" and table["methods"].get("sasrec", {}).get("rankings"):
            table["paired"] = paired_against(out, table)
        report["tables"][name] = table
        (out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    report.pop("_rankings")
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    Console().print(results_table(results, f"{name} · {len(results[0].first.users)} users"))
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    args = parse_args()
    from mmsrarec.config import Settings, apply_offline_env

    settings = Settings(threads=args.threads)
    apply_offline_env(settings)
    import torch

    torch.set_num_threads(args.threads)
    from mmsrarec.data import load_dataset
    from mmsrarec.evaluation.methods import build_method
    from mmsrarec.evaluation.protocols import Protocol
    from mmsrarec.graph.trained import TwoStageRecommender
    from mmsrarec.recommenders.sasrec import SASRecRecommender, sasrec_dir

    dataset = load_dataset(settings.dataset_dir)
    skip = set(filter(None, args.skip.split(",")))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "results.json"
    report = json.loads(previous.read_text()) if previous.exists() else {"tables": {}}
    report.update(
        command=" ".join([Path(sys.executable).name, *sys.argv]),
        machine=machine(),
        settings={"model": settings.model, "embedding_model": settings.embedding_model},
    )

    def builder(name):
        return lambda: build_method(name, settings)

    def two_stage(name):
        return lambda: TwoStageRecommender(SASRecRecommender(save_dir=sasrec_dir(settings)),
                                           build_method(name, settings), k=50)  # fmt: skip

    seeds = list(range(args.seeds))
    llm_seeds = list(range(args.llm_seeds))
    rows = ["random", "most-popular", *BASELINES]
    llm_rows = [m for m in args.llm_methods.split(",") if m]
    users = sorted(dataset.eval_users)
    if args.llm_users:
        users = sorted(random.Random(0).sample(users, args.llm_users))
    full_users = users
    if args.full_llm_users is not None:
        full_users = sorted(random.Random(0).sample(sorted(dataset.eval_users),
                                                    args.full_llm_users))  # fmt: skip
    if "sampled" not in skip:
        run_table("sampled", rows, {m: builder(m) for m in rows}, dataset, seeds,
                  Protocol.sampled, None, out, report, args.resume, settings)  # fmt: skip
    if "full" not in skip:
        run_table("full", rows, {m: builder(m) for m in rows}, dataset, seeds,
                  Protocol.full, None, out, report, args.resume, settings)  # fmt: skip
    if "sampled-llm" not in skip and llm_rows:
        names = ["random", "most-popular", *BASELINES, *llm_rows]
        run_table(f"sampled-llm{args.tag}", names, {m: builder(m) for m in names}, dataset,
                  llm_seeds, Protocol.sampled, users, out, report, args.resume,
                  settings)  # fmt: skip
    full_llm = [m for m in args.full_llm_methods.split(",") if m]
    if "full-llm" not in skip and full_llm:
        builders = {m: builder(m) for m in ["random", "most-popular", *BASELINES]}
        builders |= {f"{m}@sasrec-top50": two_stage(m) for m in full_llm}
        run_table(f"full-llm{args.tag}", list(builders), builders, dataset, llm_seeds,
                  Protocol.full, full_users, out, report, args.resume, settings)  # fmt: skip


if __name__ == "__main__":
    main()
