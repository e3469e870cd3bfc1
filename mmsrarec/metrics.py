"""Ranking metrics from the target's rank, with pessimistic tie-breaking.

`rank` is 0-based: the number of other candidates whose score is >= the target's score,
so a target tied with k others ranks below all of them (ties never help the method).
"""

from __future__ import annotations

import numpy as np


def target_rank(target_score: float, other_scores: np.ndarray) -> int:
    """0-based rank of the target among `other_scores` (ties rank the target last)."""
    return int(np.count_nonzero(other_scores >= target_score))


def ranks_from_scores(scores: np.ndarray, target_column: np.ndarray | int = 0) -> np.ndarray:
    """Pessimistic 0-based ranks for a score matrix [users, candidates].

    Entries equal to -inf are excluded items (never ranked above the target unless it is
    -inf itself). `target_column` is the target's column per row (or one for all rows).
    """
    rows = np.arange(scores.shape[0])
    target = scores[rows, target_column]
    at_or_above = (scores >= target[:, None]).sum(axis=1)
    return at_or_above - 1  # the target itself is counted once


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """HR@k = mean(rank < k)."""
    return float(np.mean(ranks < k))


def ndcg(ranks: np.ndarray, k: int) -> float:
    """NDCG@k with one relevant item = mean(1 / log2(rank + 2) if rank < k else 0)."""
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(np.mean(gains))


def mrr(ranks: np.ndarray) -> float:
    """MRR = mean(1 / (rank + 1)) over all candidates (no cut-off)."""
    return float(np.mean(1.0 / (ranks + 1.0)))


def auc(ranks: np.ndarray, n_negatives: int) -> float:
    """AUC with one positive = mean(1 - rank / n_negatives): the share of negatives scored
    strictly below the target (a tie counts as a loss)."""
    return float(np.mean(1.0 - ranks / n_negatives))


def sampled_metrics(ranks: np.ndarray, n_negatives: int) -> dict[str, float]:
    """HR@1/5/10, NDCG@5/10, MRR and AUC for the 1 + n_negatives protocol."""
    return {
        "HR@1": hit_rate(ranks, 1),
        "HR@5": hit_rate(ranks, 5),
        "NDCG@5": ndcg(ranks, 5),
        "HR@10": hit_rate(ranks, 10),
        "NDCG@10": ndcg(ranks, 10),
        "MRR": mrr(ranks),
        "AUC": auc(ranks, n_negatives),
    }


def full_metrics(ranks: np.ndarray) -> dict[str, float]:
    """HR@10 and NDCG@10 for full ranking over the catalog."""
    return {"HR@10": hit_rate(ranks, 10), "NDCG@10": ndcg(ranks, 10)}


def paired_interval(
    a: np.ndarray, b: np.ndarray, draws: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean of `a - b` over paired units (users, items) with a 95% percentile bootstrap
    interval: `{"diff", "low", "high"}`."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.ndim != 1 or len(diff) == 0:
        raise ValueError("paired_interval needs two equal-length, non-empty 1-D arrays")
    picks = np.random.default_rng(seed).integers(0, len(diff), size=(draws, len(diff)))
    means = diff[picks].mean(axis=1)
    return {"diff": float(diff.mean()), "low": float(np.quantile(means, 0.025)),
            "high": float(np.quantile(means, 0.975))}  # fmt: skip
