"""`mmsrarec trace list` and `trace show` on a run dir that a server has filled: wall time of
each command, a fresh process per run.

    python benchmarks/trace_cli.py                     # -> benchmarks/trace_cli.json
    python benchmarks/trace_cli.py --before /work/main # the same commands with another tree

The run dir gets `--threads` recommendation-API runs on ML-100K (item-kNN over the whole
catalogue, scripted keywords: the runs' size is a served run's, and no model is loaded),
then each command runs `--repeats` times: the median and slowest wall time, the median CPU
time (user + system: what the command costs, less bound to the load of the shared machine)
and `uptime`'s load average.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "trace_cli.json"
sys.path.insert(0, str(ROOT / "tests"))


def fill(run_dir: Path, threads: int) -> str:
    """`threads` API runs in `run_dir`; the id of the last."""
    from chat_fakes import MemoryKeywords, OverlapScorer, WordSummarizer

    from mmsrarec.config import load_settings
    from mmsrarec.data import load_dataset
    from mmsrarec.graph import GraphContext, GraphSettings
    from mmsrarec.graph.factory import build_ranker
    from mmsrarec.serving import RecommendationService

    settings = load_settings(run_dir=run_dir)
    dataset = load_dataset(settings.dataset_dir)
    context = GraphContext(
        dataset=dataset,
        summarizer=WordSummarizer(),
        critic=None,
        keywords=MemoryKeywords(),
        retriever=None,
        scorer=OverlapScorer(),
        settings=GraphSettings(scorer="item-knn", k_similar=0),
        ranker=build_ranker(settings, dataset, "item-knn", 0),
    )
    service = RecommendationService(settings, dataclasses.replace(context))
    pick = random.Random(0)
    last = ""
    for _ in range(threads):
        last = service.recommend_user(pick.choice(dataset.users), 10)["thread_id"]
    return last


def timed(python: Path, root: Path, args: list[str], repeats: int) -> dict:
    entry = "from mmsrarec.cli import main; raise SystemExit(main())"
    seconds, cpu, codes = [], [], []
    for _ in range(repeats):
        started, used = time.perf_counter(), _children_cpu()
        done = subprocess.run([str(python), "-c", entry, *args], cwd=root, capture_output=True)
        seconds.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - used)
        codes.append(done.returncode)
    return {
        "median_s": round(statistics.median(seconds), 3),
        "max_s": round(max(seconds), 3),
        "median_cpu_s": round(statistics.median(cpu), 3),  # user + system: less load-bound
        "exit_codes": sorted(set(codes)),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", type=Path, help="Another checkout (with its .venv).")
    args = parser.parse_args()
    run_dir = ROOT / "benchmarks" / "trace_cli_run"
    if not (run_dir / "graph.sqlite").exists():
        fill(run_dir, args.threads)
    from mmsrarec.config import load_settings
    from mmsrarec.database import thread_ids

    thread = thread_ids(load_settings(run_dir=run_dir), "recommend")[0]
    cases = {
        "trace list": ["trace", "list", "--run-dir", str(run_dir)],
        "trace show": ["trace", "show", thread, "--run-dir", str(run_dir)],
    }
    rows = []
    for name, command in cases.items():
        row = {"command": name, "load_before": [round(x, 2) for x in os.getloadavg()]}
        row.update(timed(Path(sys.executable), ROOT, command, args.repeats))
        if args.before is not None:
            before = timed(
                args.before / ".venv" / "bin" / "python", args.before, command, args.repeats
            )
            row.update({f"before_{key}": value for key, value in before.items()})
        row["load_after"] = [round(x, 2) for x in os.getloadavg()]
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "threads_in_store": args.threads,
        "repeats": args.repeats,
        "rows": rows,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
