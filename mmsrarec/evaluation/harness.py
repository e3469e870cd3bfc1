"""Run methods over seeds, summarise mean ± std, and export metrics and rankings.

Every report holds the `random` and `most-popular` reference rows beside the requested
methods. Spread is the sample standard deviation over seeds (0 for a single seed).

Rankings export: one JSON line per evaluated user, for the first seed of a method,
`{"user_id": raw id, "target": raw item id, "candidates": [raw item ids],
"scores": [floats, same order]}`, with the target first among the candidates. Sampled
protocol: all 1 + n candidates. Full protocol: the target plus the 100 best-scored items
the user had not interacted with before the target (the excluded history items are never
listed), which is enough to recompute HR@k and NDCG@k for any k <= 100. Metrics are
recomputed from a line as rank = #(other candidates with score >= the target's score).
A score of -inf (an item the method rules out) is written as null.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from mmsrarec.config import Settings
from mmsrarec.data import Dataset, Stage
from mmsrarec.errors import DataError
from mmsrarec.evaluation.distributed import SeedRunner, ray_seed_runner
from mmsrarec.evaluation.methods import REFERENCES, build_method
from mmsrarec.evaluation.protocols import EVALUATE, EvalResult, Protocol
from mmsrarec.recommenders.base import Recommender
from mmsrarec.storage import atomic_write_json, atomic_write_jsonl, atomic_write_text


@dataclass
class SeedRun:
    """One seed of one method: its metrics and wall-clock seconds to fit and evaluate."""

    seed: int
    metrics: dict[str, float]
    fit_s: float
    eval_s: float


@dataclass
class MethodResult:
    """A method over all seeds. `first` is the first seed's evaluation (for the export)."""

    method: str
    runs: list[SeedRun]
    first: EvalResult

    def mean(self) -> dict[str, float]:
        return {key: float(np.mean(self._values(key))) for key in self._keys}

    def std(self) -> dict[str, float]:
        """Sample standard deviation over seeds; exactly 0 when every seed agrees."""
        spread = {}
        for key in self._keys:
            values = self._values(key)
            agree = len(set(values)) == 1
            spread[key] = 0.0 if agree else float(np.std(values, ddof=1))
        return spread

    def _values(self, key: str) -> list[float]:
        return [run.metrics[key] for run in self.runs]

    @property
    def _keys(self) -> list[str]:
        return list(self.runs[0].metrics)


def evaluate_method(
    name: str,
    build: Callable[[], Recommender],
    dataset: Dataset,
    seeds: Sequence[int],
    protocol: Protocol,
    stage: Stage = "test",
    users: Sequence[str] | None = None,
    done_dir: Path | None = None,
    run_seed: SeedRunner | None = None,
    key: Callable[[int], str] | None = None,
) -> MethodResult:
    """For each seed: build a fresh recommender, `fit(dataset, seed)`, evaluate it.

    With `done_dir`, each finished seed is saved there (atomically) and a seed already saved
    for the same method, protocol, stage and users is loaded instead of run again, so a
    killed run resumes where it stopped. The caller keeps the folder to one configuration;
    `key(seed)` (e.g. `yes_no.resume_key`, a digest of what the trained weights must match)
    is saved with the seed, and a seed saved under another key is run again.
    `run_seed` replaces the local fit-and-evaluate (`distributed.ray_seed_runner`).
    """
    run_seed = run_seed or _local_seed_runner(build, dataset, protocol, stage, users)
    runs, first = [], None
    for seed in seeds:
        path = done_dir / f"{name}.{protocol.value}.{stage}.seed{seed}.json" if done_dir else None
        expected = key(seed) if key is not None else None
        done = _load_seed(path, dataset, users, expected) if path is not None else None
        if done is None:
            result, fit_s, eval_s = run_seed(seed)
            run = SeedRun(seed, result.metrics, fit_s, eval_s)
            if path is not None:
                _save_seed(path, run, result, expected)
        else:
            run, result = done
        runs.append(run)
        if first is None:
            first = result
    if first is None:
        raise ValueError("evaluate_method needs at least one seed")
    return MethodResult(name, runs, first)


def _local_seed_runner(
    build: Callable[[], Recommender],
    dataset: Dataset,
    protocol: Protocol,
    stage: Stage,
    users: Sequence[str] | None,
) -> SeedRunner:
    evaluate = EVALUATE[protocol]

    def run(seed: int) -> tuple[EvalResult, float, float]:
        recommender = build()
        start = time.perf_counter()
        recommender.fit(dataset, seed)
        fitted = time.perf_counter()
        result = evaluate(recommender, dataset, stage, users)
        return result, fitted - start, time.perf_counter() - fitted

    return run


def _save_seed(path: Path, run: SeedRun, result: EvalResult, key: str | None) -> None:
    # Key order is kept (no sort_keys): it is the metrics' column order in tables.
    obj = {
        "key": key, "run": vars(run), "protocol": result.protocol.value, "stage": result.stage,
        "users": result.users, "targets": result.targets.tolist(), "ranks": result.ranks.tolist(),
        "candidates": [c.tolist() for c in result.candidates],
        "scores": [s.tolist() for s in result.scores], "metrics": result.metrics,
    }  # fmt: skip
    atomic_write_text(path, json.dumps(obj) + "\n")


def _load_seed(
    path: Path, dataset: Dataset, users: Sequence[str] | None, key: str | None
) -> tuple[SeedRun, EvalResult] | None:
    """A saved seed, or None when there is none or it was made for other users, targets or
    under another `key`."""
    if not path.exists():
        return None
    expected = list(users) if users is not None else sorted(dataset.eval_users)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("key") != key:
            return None
        stage = saved["stage"]
        if sorted(saved["users"]) != sorted(expected) or saved["targets"] != [
            dataset.target(user, stage) for user in saved["users"]
        ]:
            return None
        result = EvalResult(
            Protocol(saved["protocol"]), stage, saved["users"], np.array(saved["targets"]),
            np.array(saved["ranks"]), [np.array(c) for c in saved["candidates"]],
            [np.array(s, dtype=np.float64) for s in saved["scores"]], saved["metrics"],
            np.array([t in dataset.cold for t in saved["targets"]], dtype=bool),
        )  # fmt: skip
        return SeedRun(**saved["run"]), result
    except (ValueError, KeyError, TypeError, DataError):  # unreadable: run the seed again
        return None


def run_harness(
    methods: Sequence[str],
    dataset: Dataset,
    settings: Settings,
    protocol: Protocol,
    stage: Stage = "test",
    users: Sequence[str] | None = None,
) -> list[MethodResult]:
    """Evaluate the reference rows, then each requested method, over `settings.seeds`.

    With `settings.ray_address`, each seed is fitted and scored by Ray actors instead.
    """
    names = [*REFERENCES, *(m for m in dict.fromkeys(methods) if m not in REFERENCES)]
    on_ray = settings.ray_address is not None
    everyone = list(dataset.eval_users if users is None else users)
    return [
        evaluate_method(
            name,
            lambda name=name: build_method(name, settings),
            dataset,
            settings.seeds,
            protocol,
            stage,
            users,
            run_seed=ray_seed_runner(name, settings, protocol, stage, everyone) if on_ray else None,
        )
        for name in names
    ]


def results_table(results: Sequence[MethodResult], title: str) -> Table:
    """A rich table: one row per method, `mean ± std` per metric, mean seconds per seed."""
    table = Table(title=title)
    table.add_column("method")
    metrics = list(results[0].runs[0].metrics) if results else []
    for metric in metrics:
        table.add_column(metric, justify="right")
    table.add_column("s/seed", justify="right")
    for result in results:
        mean, std = result.mean(), result.std()
        seconds = np.mean([run.fit_s + run.eval_s for run in result.runs])
        cells = [f"{mean[m]:.4f} ± {std[m]:.4f}" for m in metrics]
        table.add_row(result.method, *cells, f"{seconds:.1f}")
    return table


def build_report(
    results: Sequence[MethodResult],
    dataset: Dataset,
    protocol: Protocol,
    stage: Stage,
    seeds: Sequence[int],
    rankings: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """The `--json` export: settings of the evaluation, mean/std/per-seed metrics, timings."""
    first = results[0].first
    report: dict[str, Any] = {
        "dataset": dataset.name,
        "protocol": protocol.value,
        "stage": stage,
        "seeds": list(seeds),
        "n_users": len(first.users),
        "ties": "pessimistic: the target ranks below every item with an equal score",
        "methods": {},
    }
    if dataset.cold:
        report["split"] = {"name": "new-releases", "cold_rule": dataset.cold_rule,
                           "cold_items": len(dataset.cold)}  # fmt: skip
    if protocol == Protocol.sampled:
        report["n_negatives"] = len(first.candidates[0]) - 1
    else:
        report["excluded"] = "the user's history (every interaction before the target)"
    for result in results:
        ranking = (rankings or {}).get(result.method)
        report["methods"][result.method] = {
            "mean": result.mean(),
            "std": result.std(),
            "per_seed": [vars(run) for run in result.runs],
            "total_s": sum(run.fit_s + run.eval_s for run in result.runs),
            "rankings": str(ranking) if ranking else None,
        }
    return report


def ranking_rows(result: EvalResult, dataset: Dataset) -> Iterator[dict[str, Any]]:
    """Rankings export rows with raw ids (see the module docstring for the format)."""
    for user, candidates, scores in zip(
        result.users, result.candidates, result.scores, strict=True
    ):
        yield {
            "user_id": user,
            "target": dataset.item(int(candidates[0])).item_id,
            "candidates": [dataset.item(int(index)).item_id for index in candidates],
            "scores": [None if s == -math.inf else s for s in scores.tolist()],
        }


def rankings_paths(path: Path, methods: Sequence[str]) -> dict[str, Path]:
    """One file for one method; `<stem>.<method><suffix>` beside `path` for several."""
    if len(methods) == 1:
        return {methods[0]: path}
    return {m: path.with_name(f"{path.stem}.{m}{path.suffix}") for m in methods}


def write_rankings(path: Path, result: EvalResult, dataset: Dataset) -> None:
    """Write the rankings export atomically."""
    atomic_write_jsonl(path, ranking_rows(result, dataset))


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the metrics export atomically."""
    atomic_write_json(path, report)
