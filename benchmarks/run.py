"""Speed and memory benchmarks. `make bench` (= `python benchmarks/run.py`) reruns them all.

Each benchmark runs in its own subprocess (so peak memory is its own) with torch threads set
to `--threads`, and prints one JSON object. Results go to `benchmarks/results.json` and a
Markdown table `benchmarks/RESULTS.md`, with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
BENCHES: dict[str, Callable[[argparse.Namespace], dict]] = {}


def bench(function: Callable[[argparse.Namespace], dict]) -> Callable[[argparse.Namespace], dict]:
    BENCHES[function.__name__] = function
    return function


def settings(args: argparse.Namespace, **overrides):
    from mmsrarec.config import Settings, apply_offline_env

    values = {"cache_dir": Path(args.cache_dir), "run_dir": Path(args.work) / "runs"}
    result = Settings(threads=args.threads, **{**values, **overrides})
    apply_offline_env(result)
    return result


def dataset(args: argparse.Namespace):
    from mmsrarec.data import load_dataset, prepare_dataset

    folder, _ = prepare_dataset("ml-100k", Path(args.work) / "data")
    return load_dataset(folder)


@bench
def data_prepare(args: argparse.Namespace) -> dict:
    from mmsrarec.data import load_dataset, prepare_dataset

    target = Path(tempfile.mkdtemp(dir=args.work))
    start = time.perf_counter()
    folder, _ = prepare_dataset("ml-100k", target)
    prepared = time.perf_counter()
    prepare_dataset("ml-100k", target)
    again = time.perf_counter()
    load_dataset(folder)
    return {
        "prepare_s": prepared - start,
        "prepare_again_s": again - prepared,
        "load_verified_s": time.perf_counter() - again,
    }


def _model_load(args: argparse.Namespace, preset: str) -> dict:
    from mmsrarec.models import load_llm

    cold = settings(args, cache_dir=Path(tempfile.mkdtemp(dir=args.work)))
    start = time.perf_counter()
    load_llm(preset, cold)
    first = time.perf_counter()
    load_llm(preset, cold)
    return {"gguf_first_load_s": first - start, "cached_load_s": time.perf_counter() - first}


@bench
def load_smollm2(args: argparse.Namespace) -> dict:
    return _model_load(args, "smollm2-135m")


@bench
def load_gemma3(args: argparse.Namespace) -> dict:
    return _model_load(args, "gemma3-270m")


@bench
def encode_catalog(args: argparse.Namespace) -> dict:
    from mmsrarec.models import load_encoder

    data = dataset(args)
    start = time.perf_counter()
    encoder = load_encoder("all-minilm-l6-v2", settings(args))
    loaded = time.perf_counter()
    encoder.encode([item.text for item in data.items])
    return {
        "load_s": loaded - start,
        "items": data.n_items,
        "items_per_s": data.n_items / (time.perf_counter() - loaded),
    }


@bench
def sasrec_train(args: argparse.Namespace) -> dict:
    from mmsrarec.models.sasrec import SASRecConfig
    from mmsrarec.recommenders.sasrec import SASRecRecommender

    data = dataset(args)
    # Where `evaluate_baselines` and `graph_user` look for it: they reload, not retrain.
    save_dir = Path(args.work) / "runs" / "sasrec" / "ml-100k"
    model = SASRecRecommender(SASRecConfig(), save_dir=save_dir, progress=False)
    start = time.perf_counter()
    model.fit(data, seed=0)
    meta = json.loads((save_dir / "seed0" / "meta.json").read_text(encoding="utf-8"))
    epochs = meta["log"][-1]["epoch"] if meta["log"] else 0
    return {
        "train_s": time.perf_counter() - start,
        "epochs": epochs,
        "best_epoch": meta["best_epoch"],
    }


@bench
def evaluate_baselines(args: argparse.Namespace) -> dict:
    from mmsrarec.evaluation.harness import evaluate_method
    from mmsrarec.evaluation.methods import build_method
    from mmsrarec.evaluation.protocols import Protocol

    data = dataset(args)
    run_settings = settings(args, seeds=[0])
    result = {}
    for name in ("most-popular", "item-knn", "sasrec"):
        for protocol in (Protocol.sampled, Protocol.full):
            method = evaluate_method(
                name, lambda n=name: build_method(n, run_settings), data, [0], protocol
            )
            run = method.runs[0]
            result[f"{name}_{protocol.value}_fit_s"] = run.fit_s
            result[f"{name}_{protocol.value}_eval_s"] = run.eval_s
    return result


@bench
def graph_scoring(args: argparse.Namespace) -> dict:
    """Issue 3: 21 candidates per user, shared-prefix (KV cache) vs one forward each."""
    from scoring import bench_scoring, ml100k_prompts

    from mmsrarec.models import load_llm

    llm = load_llm("smollm2-135m", settings(args))
    return bench_scoring(llm, ml100k_prompts(llm, dataset(args), users=20), repeats=2)


@bench
def summarize_catalog(args: argparse.Namespace) -> dict:
    """Keywords for 48 catalog items: cold (the LLM runs), then again (all from the cache)."""
    from scoring import PeakRss

    from mmsrarec.models import load_llm
    from mmsrarec.summarization import PROMPT_VERSION, KeywordCache, LLMSummarizer
    from mmsrarec.summarization import summarize_catalog as run

    items = dataset(args).items[:48]
    summarizer = LLMSummarizer(load_llm("smollm2-135m", settings(args)))
    cache = KeywordCache(Path(args.work) / "kw.sqlite", summarizer.name, PROMPT_VERSION)
    with PeakRss() as rss:
        start = time.perf_counter()
        cold = run(items, summarizer, cache, progress=False)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = run(items, summarizer, cache, progress=False)
        warm_s = time.perf_counter() - start
    return {
        "items": len(items),
        "cold_s": cold_s,
        "cold_items_per_s": len(items) / cold_s,
        "cached_s": warm_s,
        "cached_summarized": warm["summarized"],
        "mean_keywords": cold["mean_keywords"],
        "peak_rss_mb": rss.peak / 2**20,
    }


@bench
def graph_user(args: argparse.Namespace) -> dict:
    """One whole graph run per user (critic loop, retrieval, 21 candidates), cold keyword
    cache for the first pass, warm for the second."""
    from scoring import PeakRss

    from mmsrarec.graph.graph import open_checkpointer
    from mmsrarec.graph.session import GraphSession

    cold_cache = Path(tempfile.mkdtemp(dir=args.work))  # empty keyword and preference caches
    (Path(args.cache_dir) / "models").mkdir(parents=True, exist_ok=True)
    (cold_cache / "models").symlink_to(Path(args.cache_dir) / "models")  # converted weights
    run_settings = settings(
        args, seeds=[0], cache_dir=cold_cache, data_dir=Path(args.work) / "data"
    )
    dataset(args)
    users = ["1", "2", "3", "4", "5"]
    session = GraphSession(run_settings, checkpointer=open_checkpointer(None))
    timings: dict[str, list[float]] = {"cold": [], "warm": []}
    with PeakRss() as rss:
        for phase in timings:
            for user in users:
                start = time.perf_counter()
                session.recommend(user)
                timings[phase].append(time.perf_counter() - start)
    return {
        "users": len(users),
        "cold_mean_s": sum(timings["cold"]) / len(users),
        "warm_mean_s": sum(timings["warm"]) / len(users),
        "peak_rss_mb": rss.peak / 2**20,
    }


def run_one(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = BENCHES[args.one](args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def machine(threads: int) -> dict:
    import psutil
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_markdown(path: Path, report: dict) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{report['command']}` · {report['date']}",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()),
        "",
        *([f"Note: {report['note']}", ""] if report.get("note") else []),
        "| benchmark | measure | value |",
        "|---|---|---|",
    ]
    for name, values in report["results"].items():
        for key, value in values.items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            lines.append(f"| {name} | {key} | {shown} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="Run only these.")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads.")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--note", help="Conditions of this run, written into RESULTS.md.")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", default=str(Path("~/.cache/mmsrarec").expanduser()))
    args = parser.parse_args()
    if args.one:
        run_one(args)
        return
    names = args.only or list(BENCHES)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {"results": {}}
    results = dict(previous.get("results", {}))
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            command = [sys.executable, __file__, "--one", name, "--work", work]
            command += ["--threads", str(args.threads), "--cache-dir", args.cache_dir]
            print(f"== {name}", flush=True)
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                sys.exit(f"benchmark `{name}` failed:\n{done.stderr[-3000:]}")
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(results[name], indent=1), flush=True)
    report = {
        "command": "make bench  # = python benchmarks/run.py --threads 2",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(args.threads),
        "results": results,
        "note": args.note or previous.get("note"),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_markdown(args.out.with_name("RESULTS.md"), report)


if __name__ == "__main__":
    main()
