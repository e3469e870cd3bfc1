"""The evaluation protocols: 1 + n frozen negatives (sampled), full-catalog ranking, and on
the new-releases split (`data/coldstart.py`) the shelf.

Both score users in batches through the `Recommender` interface and rank the target
pessimistically (`metrics.ranks_from_scores`: a target tied with k items ranks below all k).

- Sampled: candidates = `dataset.candidates(user, stage)` = [target, *frozen negatives];
  HR@1/5/10, NDCG@5/10, MRR, AUC.
- Full: every catalog item is ranked except the items of the user's history (all
  interactions before the target: training, plus the validation item at the test stage),
  whose scores are set to -inf; the target keeps its score. HR@10, NDCG@10.
- Shelf (new-releases split only): each user whose target is cold ranks it among the cold
  items only, the history excluded as in full ranking: which new release to show. HR@10,
  NDCG@10.

On the new-releases split every protocol also reports the cold-target users (target cold)
and the warm-target users apart: metrics `cold:<name>` and `warm:<name>` beside the metrics
over all users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from mmsrarec.data import Dataset, Stage
from mmsrarec.errors import DataError
from mmsrarec.metrics import full_metrics, ranks_from_scores, sampled_metrics
from mmsrarec.recommenders.base import Query, Recommender

BATCH_SIZE = 256
EXPORT_TOP = 100  # full protocol: items kept per user for the rankings export


class Protocol(StrEnum):
    """How candidates are chosen."""

    sampled = "sampled"
    full = "full"
    shelf = "shelf"


@dataclass
class EvalResult:
    """One evaluation of one fitted recommender.

    Attributes:
        protocol: `sampled` or `full`.
        stage: `valid` or `test`.
        users: raw user ids, in evaluation order.
        targets: the target item index per user, [n_users].
        ranks: 0-based pessimistic rank of the target per user, [n_users].
        candidates: per user, item indices with the target first. Sampled: all 1 + n
            candidates. Full: the target, then the `EXPORT_TOP` best-scored other items
            that were not excluded (fewer if the catalog is smaller).
        scores: per user, the scores of `candidates`, same order.
        metrics: metric name -> mean over users; on the new-releases split also over the
            cold-target (`cold:<name>`) and warm-target (`warm:<name>`) users.
        cold: per user, whether the target is a cold item, [n_users] (all False off the
            new-releases split).
    """

    protocol: Protocol
    stage: Stage
    users: list[str]
    targets: np.ndarray
    ranks: np.ndarray
    candidates: list[np.ndarray]
    scores: list[np.ndarray]
    metrics: dict[str, float]
    cold: np.ndarray


def _metrics(
    protocol: Protocol, ranks: np.ndarray, cold: np.ndarray, n_negatives: int = 0
) -> dict[str, float]:
    """The protocol's metrics over all users, then over cold- and warm-target users apart
    where there are cold targets."""

    def over(mask: np.ndarray) -> dict[str, float]:
        if protocol == Protocol.sampled:
            return sampled_metrics(ranks[mask], n_negatives=n_negatives)
        return full_metrics(ranks[mask])

    metrics = over(np.ones(len(ranks), dtype=bool))
    if cold.any():
        for group, mask in (("cold", cold), ("warm", ~cold)):
            if mask.any():
                metrics |= {f"{group}:{name}": value for name, value in over(mask).items()}
    return metrics


def _cold_targets(dataset: Dataset, targets: np.ndarray) -> np.ndarray:
    return np.array([int(t) in dataset.cold for t in targets], dtype=bool)


def _batches(users: list[str], size: int) -> list[list[str]]:
    return [users[start : start + size] for start in range(0, len(users), size)]


def _check_finite(scores: np.ndarray, recommender: Recommender) -> None:
    if np.isnan(scores).any():
        raise ValueError(f"recommender `{recommender.name}` returned NaN scores")


def evaluate_sampled(
    recommender: Recommender,
    dataset: Dataset,
    stage: Stage = "test",
    users: Sequence[str] | None = None,
    batch_size: int = BATCH_SIZE,
) -> EvalResult:
    """Score each user's target and frozen negatives; rank the target (column 0).

    Args:
        recommender: a fitted recommender.
        dataset: the prepared dataset (its frozen negatives define the candidates).
        stage: `test` or `valid`.
        users: raw user ids to evaluate; default every evaluable user.
        batch_size: users per `score_candidates` call.

    Returns:
        The per-user ranks, candidates and scores, and the sampled metrics.
    """
    users = list(dataset.eval_users if users is None else users)
    candidates, scores = [], []
    for batch in _batches(users, batch_size):
        queries = [Query.from_dataset(dataset, user, stage, sampled=True) for user in batch]
        candidates.extend(np.asarray(query.candidates) for query in queries)
        scores.extend(
            np.asarray(row, dtype=np.float64) for row in recommender.score_candidates(queries)
        )
    matrix = np.stack(scores)  # [n_users, 1 + n_negatives]; all users have as many negatives
    _check_finite(matrix, recommender)
    ranks = ranks_from_scores(matrix, 0)
    targets = np.array([c[0] for c in candidates])
    cold = _cold_targets(dataset, targets)
    return EvalResult(
        protocol=Protocol.sampled,
        stage=stage,
        users=users,
        targets=targets,
        ranks=ranks,
        candidates=candidates,
        scores=scores,
        metrics=_metrics(Protocol.sampled, ranks, cold, matrix.shape[1] - 1),
        cold=cold,
    )


def evaluate_full(
    recommender: Recommender,
    dataset: Dataset,
    stage: Stage = "test",
    users: Sequence[str] | None = None,
    batch_size: int = BATCH_SIZE,
    export_top: int = EXPORT_TOP,
    only: np.ndarray | None = None,
) -> EvalResult:
    """Rank the whole catalog minus the user's history; keep the top items for export.

    Args:
        recommender: a fitted recommender.
        dataset: the prepared dataset.
        stage: `test` or `valid`.
        users: raw user ids to evaluate; default every evaluable user.
        batch_size: users per `score_catalog` call.
        export_top: other items kept per user in `candidates` (enough to recompute HR@k and
            NDCG@k for every k <= export_top from the export alone).
        only: bool [n_items + 1]: rank only these items (the shelf), or None for all.

    Returns:
        The per-user ranks, the target + top items with their scores, and HR@10, NDCG@10.
    """
    users = list(dataset.eval_users if users is None else users)
    targets = np.array([dataset.target(user, stage) for user in users])
    ranks, candidates, scores = [], [], []
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        queries = [Query.from_dataset(dataset, user, stage, sampled=False) for user in batch]
        matrix = np.array(recommender.score_catalog(queries), dtype=np.float64)  # [b, n_items+1]
        _check_finite(matrix, recommender)
        batch_targets = targets[start : start + len(batch)]
        rows = np.arange(len(batch))
        kept = matrix[rows, batch_targets]
        matrix[:, 0] = -np.inf  # padding column
        if only is not None:
            matrix[:, ~only] = -np.inf
        for row, query in enumerate(queries):
            matrix[row, list(query.history)] = -np.inf
        matrix[rows, batch_targets] = kept  # the target is ranked even if seen before
        ranks.append(ranks_from_scores(matrix, batch_targets))
        for row, target in enumerate(batch_targets):
            top = _top_others(matrix[row], target, export_top)
            candidates.append(np.concatenate([[target], top]))
            scores.append(matrix[row, candidates[-1]])
    all_ranks = np.concatenate(ranks) if ranks else np.array([], dtype=int)
    protocol = Protocol.full if only is None else Protocol.shelf
    cold = _cold_targets(dataset, targets)
    return EvalResult(
        protocol=protocol,
        stage=stage,
        users=users,
        targets=targets,
        ranks=all_ranks,
        candidates=candidates,
        scores=scores,
        metrics=_metrics(protocol, all_ranks, cold),
        cold=cold,
    )


def evaluate_shelf(
    recommender: Recommender,
    dataset: Dataset,
    stage: Stage = "test",
    users: Sequence[str] | None = None,
    **options,
) -> EvalResult:
    """The shelf: every user (of `users`, default all) whose `stage` target is cold ranks it
    among the cold items only (full-ranking rules otherwise; `options` as `evaluate_full`'s)."""
    if not dataset.cold:
        raise DataError("the shelf protocol needs the new-releases split: add "
                        "`--split new-releases`")  # fmt: skip
    only = np.zeros(dataset.n_items + 1, dtype=bool)
    only[sorted(dataset.cold)] = True
    users = [u for u in (dataset.eval_users if users is None else users)
             if dataset.target(u, stage) in dataset.cold]  # fmt: skip
    return evaluate_full(recommender, dataset, stage, users, only=only, **options)


EVALUATE = {Protocol.sampled: evaluate_sampled, Protocol.full: evaluate_full,
            Protocol.shelf: evaluate_shelf}  # fmt: skip


def _top_others(row: np.ndarray, target: int, k: int) -> np.ndarray:
    """Indices of the k best-scored items other than `target` and not excluded, best first."""
    others = row.copy()
    others[target] = -np.inf
    return top_items(others, k)


def top_items(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best-scored items of `row` whose score is not -inf, best first."""
    kept = np.flatnonzero(row > -np.inf)
    if len(kept) > k:
        kept = kept[np.argpartition(-row[kept], k - 1)[:k]]
    return kept[np.argsort(-row[kept], kind="stable")]


def merge_results(parts: Sequence[EvalResult]) -> EvalResult:
    """One result from the results of consecutive user shards, in shard order.

    Ranks are per user, so the metrics recomputed over the joined ranks equal those of one
    evaluation of all the users.
    """
    if not parts:
        raise ValueError("merge_results needs at least one part")
    first = parts[0]
    ranks = np.concatenate([part.ranks for part in parts])
    candidates = [c for part in parts for c in part.candidates]
    cold = np.concatenate([part.cold for part in parts])
    n_negatives = len(candidates[0]) - 1 if first.protocol == Protocol.sampled else 0
    metrics = _metrics(first.protocol, ranks, cold, n_negatives)
    return EvalResult(
        protocol=first.protocol,
        stage=first.stage,
        users=[user for part in parts for user in part.users],
        targets=np.concatenate([part.targets for part in parts]),
        ranks=ranks,
        candidates=candidates,
        scores=[s for part in parts for s in part.scores],
        metrics=metrics,
        cold=cold,
    )
