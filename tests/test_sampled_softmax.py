"""The sampled softmax with the logQ correction (`training/losses.py`) and SASRec's
`loss="sampled"` / `"auto"`."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_sasrec import TINY, _fit, _full_ndcg10

from mmsrarec.models.sasrec import SASRecConfig
from mmsrarec.recommenders.base import Query
from mmsrarec.training.losses import (
    FULL_SOFTMAX_MAX_ITEMS,
    sampled_softmax_loss,
    sampling_log_q,
)
from mmsrarec.training.sasrec_trainer import resolved_loss


def test_sampling_distribution_mixes_popularity_and_uniform() -> None:
    q = sampling_log_q([0, 6, 2, 0, 2]).exp()
    assert q[0] == 0 and torch.isclose(q.sum(), torch.tensor(1.0))
    assert q[3] == pytest.approx(0.5 / 4)  # never seen: its uniform share only
    assert q[1] == pytest.approx(0.5 * 0.6 + 0.5 / 4)


def test_corrected_sampled_loss_estimates_the_full_softmax() -> None:
    """Averaged over draws, the logQ-corrected loss with popularity-skewed draws is close to
    the full softmax's; the same draws without the correction are far from it."""
    generator = torch.Generator().manual_seed(0)
    n, dim, draws = 500, 16, 400
    weight = torch.randn(n + 1, dim, generator=generator) * 0.5
    hidden = torch.randn(64, dim, generator=generator)
    positives = torch.randint(1, n + 1, (64,), generator=generator)
    counts = [0, *(1000.0 / (rank + 1) for rank in range(n))]  # a power law
    hidden[:, 0] = 1.0
    weight[1:, 0] = torch.tensor(counts[1:]).log()  # popular items score higher, as learned
    full = F.cross_entropy((hidden @ weight.T)[:, 1:], positives - 1).item()
    uncorrected = torch.full((n + 1,), -math.log(draws))  # cancels the loss's own -log S

    def mean_loss(log_q: torch.Tensor) -> float:
        return np.mean([
            sampled_softmax_loss(hidden, positives, weight, log_q, draws, generator).item()
            for _ in range(30)
        ])  # fmt: skip

    corrected_error = abs(mean_loss(sampling_log_q(counts)) - full)
    assert corrected_error < 0.02 * full
    assert abs(mean_loss(uncorrected) - full) > 5 * corrected_error


def test_auto_loss_follows_the_catalogue_size() -> None:
    assert resolved_loss(SASRecConfig(loss="auto"), FULL_SOFTMAX_MAX_ITEMS) == "ce"
    assert resolved_loss(SASRecConfig(loss="auto"), FULL_SOFTMAX_MAX_ITEMS + 1) == "sampled"
    assert resolved_loss(SASRecConfig(loss="bce"), 10**6) == "bce"


def test_new_fields_keep_the_fingerprints_of_trained_models() -> None:
    # The digest of `SASRecConfig()` before `sampled_negatives` existed: every SASRec trained
    # with the defaults is keyed on it.
    before = "4ad577ffc8f3a27c3d485ebd8245a56b245dba5de54b5ec4b28795b3d168e429"
    assert SASRecConfig().digest() == before
    assert SASRecConfig(sampled_negatives=7).digest() != before


def test_sasrec_learns_the_pattern_with_the_sampled_loss(tiny_dataset) -> None:
    config = replace(TINY, loss="sampled", sampled_negatives=8)
    recommender = _fit(tiny_dataset, config=config)
    assert all(np.isfinite(row["loss"]) for row in recommender.meta["log"])
    queries = [Query.from_dataset(tiny_dataset, u, "valid", False) for u in tiny_dataset.eval_users]
    popularity = np.tile(np.asarray(tiny_dataset.train_popularity(), float), (len(queries), 1))
    learned = _full_ndcg10(recommender.score_catalog(queries), tiny_dataset, "valid")
    assert learned > _full_ndcg10(popularity, tiny_dataset, "valid") + 0.2
