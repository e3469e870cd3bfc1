"""Per-user latency of `SharedPrefixScorer` against `NaiveScorer`: same model, prompts and run.

    python benchmarks/scoring.py --model smollm2-135m --users 20 --threads 2

Prompts come from prepared ML-100K test users (the frozen 1 + 20 candidates): the last 5
history items with their genres as stand-in keywords (no summarizer is run) and, as stand-in
collaborative keywords, the test targets of the next 3 users in the list. Both scorers score
every user `repeats` times, alternating which goes first; one user is scored first to warm
up. Peak RSS is sampled (every 5 ms, psutil) while each scorer runs. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil
import torch

from mmsrarec.data import Dataset, Item, load_dataset, prepare_dataset
from mmsrarec.models.llm import LLM
from mmsrarec.scoring import NaiveScorer, SharedPrefixScorer, build_prefix, candidate_suffix
from mmsrarec.types import SimilarUser

Prompt = tuple[str, list[str]]


class PeakRss:
    """Samples this process's resident memory in a thread; `peak` in bytes."""

    def __init__(self, every: float = 0.005) -> None:
        self.every, self.peak = every, 0
        self._process = psutil.Process()
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRss:
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _time(score: Callable[[str, list[str]], list[float]], prompt: Prompt) -> tuple[float, list]:
    started = time.perf_counter()
    scores = score(*prompt)
    return time.perf_counter() - started, scores


def _summary(seconds: Sequence[float], peak: int) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(seconds), 4),
        "mean_s": round(statistics.fmean(seconds), 4),
        "min_s": round(min(seconds), 4),
        "peak_rss_mb": round(peak / 2**20, 1),
    }


def bench_scoring(
    llm: LLM, prompts: Sequence[Prompt], repeats: int = 1, batch_size: int = 32
) -> dict[str, object]:
    """Per-user latency (seconds) and peak RSS of both scorers on `prompts`.

    Args:
        llm: The model both scorers use.
        prompts: `(prefix, suffixes)` per user.
        repeats: Times each user is scored by each scorer (order alternates per repeat).
        batch_size: `SharedPrefixScorer` batch size.

    Returns:
        `shared` and `naive` latency summaries, `speedup` (naive / shared median), the largest
        score difference between the scorers, and the run's settings (threads, sizes).
    """
    shared, naive = SharedPrefixScorer(llm, batch_size=batch_size), NaiveScorer(llm)
    scorers = {"shared": shared.score, "naive": naive.score}
    for score in scorers.values():  # warm-up: first calls allocate and pick kernels
        score(*prompts[0])
    seconds: dict[str, list[float]] = {name: [] for name in scorers}
    peaks = dict.fromkeys(scorers, 0)
    largest_difference = 0.0
    for repeat in range(repeats):
        names = list(scorers) if repeat % 2 == 0 else list(reversed(scorers))
        for prompt in prompts:
            results = {}
            for name in names:
                with PeakRss() as rss:
                    elapsed, results[name] = _time(scorers[name], prompt)
                seconds[name].append(elapsed)
                peaks[name] = max(peaks[name], rss.peak)
            pairs = zip(results["shared"], results["naive"], strict=True)
            largest_difference = max(largest_difference, *(abs(a - b) for a, b in pairs))
    summary = {name: _summary(seconds[name], peaks[name]) for name in scorers}
    return {
        "model": llm.name,
        "users": len(prompts),
        "candidates_per_user": statistics.fmean(len(s) for _, s in prompts),
        "prefix_tokens_mean": statistics.fmean(
            len(llm.tokenizer(p, add_special_tokens=False).input_ids) for p, _ in prompts
        ),
        "repeats": repeats,
        "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
        **summary,
        "speedup": round(summary["naive"]["median_s"] / summary["shared"]["median_s"], 2),
        "max_abs_score_difference": largest_difference,
    }


def _genres(item: Item) -> list[str]:
    found = re.search(r"Genres: (.*)\.$", item.text)
    return found.group(1).split(", ") if found else []


def ml100k_prompts(llm: LLM, dataset: Dataset, users: int, n_history: int = 5) -> list[Prompt]:
    """Prompts for the first `users` test users (see the module docstring)."""
    chosen = dataset.eval_users[: users + 3]
    prompts = []
    for position, user in enumerate(chosen[:users]):
        recent = [dataset.item(i) for i in dataset.history(user, "test")[-n_history:]]
        neighbours = []
        for other in chosen[position + 1 : position + 4]:
            target = dataset.item(dataset.target(other, "test"))
            neighbours.append(
                SimilarUser(
                    user_id=other,
                    similarity=0.0,
                    next_item_id=target.item_id,
                    next_title=target.title,
                    keywords=_genres(target),
                )
            )
        history = [(item.title, _genres(item)) for item in recent]
        prefix = build_prefix(llm, history, "", neighbours)
        candidates = [dataset.item(i) for i in dataset.candidates(user, "test")]
        prompts.append((prefix, [candidate_suffix(llm, item) for item in candidates]))
    return prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from mmsrarec.config import Settings
    from mmsrarec.models import load_llm

    settings = Settings()
    llm = load_llm(args.model, settings)
    with tempfile.TemporaryDirectory() as scratch:
        folder, _ = prepare_dataset("ml-100k", Path(scratch))
        dataset = load_dataset(folder)
    prompts = ml100k_prompts(llm, dataset, args.users)
    result = bench_scoring(llm, prompts, repeats=args.repeats, batch_size=args.batch_size)
    result["cpu_count"] = psutil.cpu_count()
    result["load_average_1m"] = round(psutil.getloadavg()[0], 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
