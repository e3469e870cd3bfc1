"""Cost curves on SYNTHETIC data: wall time and peak memory of each step against catalogue
size and number of users (`mmsrarec data synth`: planted structure, costs only, never
accuracy).

    python benchmarks/scale.py                       # the whole grid, resumable
    python benchmarks/scale.py --items 1000 --users 1000,10000 --steps prepare,item-knn
    python benchmarks/scale.py --plot-only

Grid: items x users; steps `prepare`, `item-knn`, `sasrec-epoch`, `llm-epoch`, `gate`,
`index`, `score` (and `item-knn-dense`, the first version, for the O(n^2) before). Each step
runs in its own process with one thread (`benchmarks/scale_steps.py`), watched here: killed
past `--limit-s` (status `timeout`) or past `--max-rss-gb` of resident memory (status `oom`);
an epoch cut short by its time box is `partial` and projected from its steps. A step that
failed at a point is not run at larger points (status `skipped: <why> at ...`).
Each result is appended to `benchmarks/scale/results.json` as soon as it exists, so a killed
run resumes where it stopped; `--redo` runs recorded points again. The machine is shared:
each row records the load average when the step started.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
OUT = HERE / "scale"
STEPS = ("prepare", "item-knn", "item-knn-dense", "sasrec-epoch", "llm-epoch", "gate", "index",
         "score")  # fmt: skip
ITEMS = (1_000, 10_000, 100_000)
USERS = (1_000, 10_000, 100_000, 1_000_000)
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "MMSRAREC_THREADS")}  # fmt: skip


def numbers(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part]


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def save(path: Path, rows: list[dict]) -> None:
    rows.sort(key=lambda r: (STEPS.index(r["step"]) if r["step"] in STEPS else 99,
                             r["items"], r["users"]))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_child(step: str, items: int, users: int, args: argparse.Namespace) -> dict:
    """Run one step in a child process; kill it past the time or memory limit."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        command = [sys.executable, str(HERE / "scale_steps.py"), step, "--items", str(items),
                   "--users", str(users), "--work", str(args.work), "--result", str(result),
                   "--limit-s", str(max(args.limit_s - 60, 30))]  # fmt: skip
        child = subprocess.Popen(command, env={**os.environ, **ONE_THREAD})
        watched = psutil.Process(child.pid)
        started, peak, killed = time.perf_counter(), 0.0, None
        while child.poll() is None:
            try:
                procs = [watched, *watched.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs) / 2**30
            except psutil.Error:
                rss = 0.0
            peak = max(peak, rss)
            if rss > args.max_rss_gb:
                killed = f"oom: above {args.max_rss_gb} GB resident, killed"
            elif time.perf_counter() - started > args.limit_s:
                killed = f"timeout: above {args.limit_s:.0f} s, killed"
            if killed:
                child.kill()
                child.wait()
                break
            time.sleep(0.2)
        wall = time.perf_counter() - started
        if killed:
            return {"seconds": wall, "peak_rss_gb": peak, "status": killed}
        if child.returncode != 0 or not result.exists():
            return {"seconds": wall, "peak_rss_gb": peak,
                    "status": f"error: exit code {child.returncode}"}  # fmt: skip
        out = json.loads(result.read_text(encoding="utf-8"))
        out["peak_rss_gb"] = max(out.get("peak_rss_gb") or 0.0, peak)
        return out


def blocked(rows: list[dict], step: str, items: int, users: int) -> str | None:
    """Why `step` is not worth running at this point: it failed at a point no larger."""
    for row in rows:
        if (row["step"] == step and row["status"].startswith(("oom", "timeout", "error"))
                and row["items"] <= items and row["users"] <= users):  # fmt: skip
            return f"skipped: {row['status'].split(':')[0]} at {row['items']} x {row['users']}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=numbers, default=list(ITEMS))
    parser.add_argument("--users", type=numbers, default=list(USERS))
    parser.add_argument("--steps", type=lambda t: t.split(","), default=list(STEPS))
    parser.add_argument("--limit-s", type=float, default=1200.0, help="Per step and point.")
    parser.add_argument("--max-rss-gb", type=float, default=10.0)
    parser.add_argument("--work", type=Path, default=Path("~/.cache/mmsrarec/scale").expanduser())
    parser.add_argument("--out", type=Path, default=OUT / "results.json")
    parser.add_argument("--redo", action="store_true", help="Run recorded points again.")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    rows = load(args.out)
    if not args.plot_only:
        for users in args.users:
            for items in args.items:
                run_point(rows, items, users, args)
    from scale_plot import plot, table

    plot(rows, args.out.with_name("cost_curves.png"))
    args.out.with_name("RESULTS.md").write_text(
        "# Cost curves on SYNTHETIC data (`python benchmarks/scale.py`)\n\n" + table(rows),
        encoding="utf-8",
    )


def run_point(rows: list[dict], items: int, users: int, args: argparse.Namespace) -> None:
    for step in args.steps:
        key = (items, users, step)
        done = [r for r in rows if (r["items"], r["users"], r["step"]) == key]
        if done and not args.redo:
            continue
        if step != "prepare" and not any(
            r["step"] == "prepare" and r["status"] == "ok" and (r["items"], r["users"]) ==
            (items, users) for r in rows):  # fmt: skip
            continue  # no prepared data here
        rows[:] = [r for r in rows if (r["items"], r["users"], r["step"]) != key]
        load_average = [round(x, 2) for x in os.getloadavg()]
        why = blocked(rows, step, items, users)
        if why:
            out = {"seconds": None, "peak_rss_gb": None, "status": why}
        else:
            if step == "prepare":
                run_child("synth", items, users, args)  # the source files, not timed
            out = run_child(step, items, users, args)
        row = {"items": items, "users": users, "step": step, **out,
               "load_average": load_average, "data": "synthetic"}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
        save(args.out, rows)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
