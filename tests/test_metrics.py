"""Every metric against hand-computed values; ties are pessimistic; -inf means excluded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmsrarec.metrics import (
    auc,
    full_metrics,
    hit_rate,
    mrr,
    ndcg,
    ranks_from_scores,
    sampled_metrics,
    target_rank,
)

RANKS = np.array([0, 1, 4, 9, 20])  # five users, 0-based ranks


def test_target_rank_counts_ties_against_the_target() -> None:
    assert target_rank(0.5, np.array([0.1, 0.2])) == 0
    assert target_rank(0.5, np.array([0.9, 0.5, 0.1])) == 2  # the tie ranks above
    assert target_rank(0.5, np.array([0.5, 0.5, 0.5])) == 3


def test_ranks_from_scores_pessimistic_ties() -> None:
    scores = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],  # target best -> 0
            [0.5, 0.5, 0.1, 0.9],  # one tie + one better -> 2
            [1.0, 1.0, 1.0, 1.0],  # all tied (constant scorer) -> last
            [0.0, 0.1, 0.2, 0.3],  # target worst -> 3
        ]
    )
    assert ranks_from_scores(scores, 0).tolist() == [0, 2, 3, 3]


def test_ranks_from_scores_per_row_target_column() -> None:
    scores = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.7]])
    assert ranks_from_scores(scores, np.array([1, 2])).tolist() == [0, 1]


def test_minus_inf_entries_are_excluded() -> None:
    scores = np.array(
        [
            [0.2, -math.inf, 0.5, -math.inf],  # two excluded, one better -> 1
            [-math.inf, -math.inf, 0.1, 0.2],  # excluded target ranks below everything
        ]
    )
    assert ranks_from_scores(scores, 0).tolist() == [1, 3]


def test_hit_rate() -> None:
    assert hit_rate(RANKS, 1) == pytest.approx(1 / 5)
    assert hit_rate(RANKS, 5) == pytest.approx(3 / 5)
    assert hit_rate(RANKS, 10) == pytest.approx(4 / 5)


def test_ndcg() -> None:
    at5 = (1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(6)) / 5
    at10 = at5 + (1 / math.log2(11)) / 5
    assert ndcg(RANKS, 5) == pytest.approx(at5)
    assert ndcg(RANKS, 10) == pytest.approx(at10)
    assert ndcg(np.array([0]), 1) == 1.0


def test_mrr() -> None:
    assert mrr(RANKS) == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10 + 1 / 21) / 5)


def test_auc() -> None:
    assert auc(RANKS, 20) == pytest.approx((1 + 19 / 20 + 16 / 20 + 11 / 20 + 0) / 5)
    assert auc(np.array([20]), 20) == 0.0  # all tied with the target (pessimistic)


def test_sampled_metrics_bundle() -> None:
    metrics = sampled_metrics(RANKS, n_negatives=20)
    assert list(metrics) == ["HR@1", "HR@5", "NDCG@5", "HR@10", "NDCG@10", "MRR", "AUC"]
    assert metrics["HR@5"] == hit_rate(RANKS, 5)
    assert metrics["NDCG@10"] == ndcg(RANKS, 10)
    assert metrics["AUC"] == auc(RANKS, 20)


def test_full_metrics_bundle() -> None:
    assert full_metrics(RANKS) == {"HR@10": hit_rate(RANKS, 10), "NDCG@10": ndcg(RANKS, 10)}


def test_constant_scorer_scores_zero_not_one() -> None:
    """Breaking ties by position would give a constant scorer HR@1 = 1; pessimism gives 0."""
    ranks = ranks_from_scores(np.zeros((3, 21)), 0)
    assert sampled_metrics(ranks, 20)["HR@1"] == 0.0
    assert sampled_metrics(ranks, 20)["HR@10"] == 0.0
