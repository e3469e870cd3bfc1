"""CLI start-up: wall time of `mmsrarec --help` and of usage errors, each a fresh process.

    python benchmarks/cli_startup.py            # -> benchmarks/cli_startup.json
    git archive 4eb1684 | tar -x -C /tmp/before && \
        python benchmarks/cli_startup.py --before /tmp/before   # with the old tree beside

Each case runs `--repeats` times; the table gives the median and the slowest. A command's
module (and torch, transformers, ...) loads only when that command runs, so these never
import a model library. `train ...` is listed too: its option defaults come from TRL's config
classes, so `train summarizer|recommender` pay for importing TRL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    ["--help"],
    [],
    ["recommend", "--user", "1", "--top", "0"],
    ["recommend", "--user", "1", "--stage", "train"],
    ["evaluate", "--protocol", "nope"],
    ["data", "prepare", "--bogus"],
    ["trace", "verify"],
    ["serve", "--port", "x"],
    ["nosuch"],
    ["train", "--help"],
    ["train", "llm-recommender", "--bogus"],
    ["train", "recommender", "--bogus"],
]


def time_once(args: list[str], root: Path) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    code = "from mmsrarec.cli import main; main()"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=root, env=env, capture_output=True
    )
    return time.perf_counter() - started, done.returncode


def time_case(args: list[str], repeats: int, before: Path | None) -> dict:
    """Median and slowest of `repeats` runs; with `before`, that tree's runs alternate with
    these, so that both see the same load on a shared machine."""
    runs: dict[str, list[tuple[float, int]]] = {"now": [], "before": []}
    for _ in range(repeats):
        runs["now"].append(time_once(args, ROOT))
        if before is not None:
            runs["before"].append(time_once(args, before))
    row: dict = {"args": " ".join(args) or "(none)"}
    for name, timed in runs.items():
        if timed:
            prefix = "" if name == "now" else "before_"
            row[f"{prefix}median_s"] = round(statistics.median(s for s, _ in timed), 3)
            row[f"{prefix}max_s"] = round(max(s for s, _ in timed), 3)
            row[f"{prefix}exit_codes"] = sorted({code for _, code in timed})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "cli_startup.json")
    parser.add_argument(
        "--before", type=Path, help="Also time this source tree (e.g. `git archive` of a commit)."
    )
    args = parser.parse_args()
    rows = [time_case(case, args.repeats, args.before) for case in CASES]
    for row in rows:
        before = f" (before: {row['before_median_s']:.2f} s)" if "before_median_s" in row else ""
        print(f"{row['median_s']:6.2f} s (max {row['max_s']:.2f}){before}  mmsrarec {row['args']}")
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "repeats": args.repeats,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
