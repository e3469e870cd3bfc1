"""Evaluation and batch scoring sharded over Ray actors, score for score equal to the local loop.

Users are cut into the local loop's own batches and each batch is one task for a pool of
actors; results come back in batch order (`ActorPool.map`), whichever actor finishes first.
A batch sees the same inputs as in the local loop, so its scores are the same floats, and
the output does not depend on the number of workers.

Each actor builds and fits the method once (`fit` reloads saved checkpoints and indexes).
The first actor fits alone before the others start: a method with no saved checkpoint trains
once, and the others load what it saved instead of training in parallel.

Ray is optional (`pip install -e '.[ray]'`) and imported only when asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mmsrarec.cluster import connect, worker_count
from mmsrarec.config import Settings, apply_offline_env
from mmsrarec.data import Stage, load_dataset
from mmsrarec.errors import ConfigError
from mmsrarec.evaluation.batch_scoring import score_batch, user_batches
from mmsrarec.evaluation.methods import build_method
from mmsrarec.evaluation.protocols import (
    BATCH_SIZE,
    EVALUATE,
    EXPORT_TOP,
    EvalResult,
    Protocol,
    merge_results,
)

__all__ = ["ScoringActor", "connect", "fitted_actors", "map_ordered", "ray_seed_runner",
           "score_users_on_ray", "worker_count"]  # fmt: skip

# seed -> (result, seconds to start and fit the actors, seconds to score)
SeedRunner = Callable[[int], tuple[EvalResult, float, float]]


class ScoringActor:
    """One Ray actor: the dataset and one fitted method, kept for every batch it is given."""

    def __init__(self, settings: dict[str, Any], method: str, seed: int) -> None:
        import torch

        self.settings = Settings(**settings)
        apply_offline_env(self.settings)
        torch.set_num_threads(self.settings.threads)
        self.dataset = load_dataset(self.settings.dataset_dir)
        self.recommender = build_method(method, self.settings)
        self.seed = seed
        self.fits = self.batches = 0

    def fit(self) -> None:
        """Fit (or reload) the method."""
        self.recommender.fit(self.dataset, self.seed)
        self.fits += 1

    def evaluate(self, protocol: str, stage: Stage, users: list[str]) -> EvalResult:
        """One batch of the evaluation protocol (see `protocols`)."""
        self.batches += 1
        evaluate = EVALUATE[protocol]
        return evaluate(self.recommender, self.dataset, stage, users, batch_size=len(users))

    def score(self, users: list[str], top: int) -> list[dict[str, Any]]:
        """One batch of `batch_scoring.score_users`."""
        self.batches += 1
        return score_batch(self.recommender, self.dataset, users, top)

    def stats(self) -> tuple[int, int]:
        """How often this actor fitted its method, and how many batches it scored."""
        return self.fits, self.batches


@contextmanager
def fitted_actors(settings: Settings, method: str, seed: int) -> Iterator[list[Any]]:
    """Fitted actors for `method` at `seed` (handles); they are killed on exit."""
    if settings.ray_address is None:
        raise ConfigError("no `ray_address` set: give `--ray local|auto|ray://host:port`")
    ray = connect(settings.ray_address)
    remote = ray.remote(num_cpus=settings.threads)(ScoringActor)
    dump = settings.model_dump()
    actors = [remote.remote(dump, method, seed) for _ in range(worker_count(ray, settings))]
    try:
        ray.get(actors[0].fit.remote())  # trains and saves if needed, alone
        ray.get([actor.fit.remote() for actor in actors[1:]])
        yield actors
    finally:
        for actor in actors:
            ray.kill(actor)


def map_ordered(actors: list[Any], call: Callable[[Any, Any], Any], tasks: list[Any]) -> list[Any]:
    """`call(actor, task)` for every task, spread over idle actors; results in task order."""
    from ray.util import ActorPool

    return list(ActorPool(actors).map(call, tasks))


def ray_seed_runner(
    method: str,
    settings: Settings,
    protocol: Protocol,
    stage: Stage,
    users: Sequence[str],
    batch_size: int = BATCH_SIZE,
) -> SeedRunner:
    """What `harness.evaluate_method` runs per seed when `settings.ray_address` is set."""

    def run(seed: int) -> tuple[EvalResult, float, float]:
        start = time.perf_counter()
        with fitted_actors(settings, method, seed) as actors:
            fitted = time.perf_counter()
            parts = map_ordered(
                actors,
                lambda actor, batch: actor.evaluate.remote(protocol.value, stage, batch),
                user_batches(users, batch_size),
            )
            result = merge_results(parts)
        return result, fitted - start, time.perf_counter() - fitted

    return run


def score_users_on_ray(
    method: str,
    settings: Settings,
    users: Sequence[str],
    seed: int,
    top: int = EXPORT_TOP,
    batch_size: int = BATCH_SIZE,
) -> list[dict[str, Any]]:
    """`batch_scoring.score_users` over Ray actors: the same rows, in the same order."""
    with fitted_actors(settings, method, seed) as actors:
        parts = map_ordered(
            actors,
            lambda actor, batch: actor.score.remote(batch, top),
            user_batches(users, batch_size),
        )
    return [row for part in parts for row in part]
