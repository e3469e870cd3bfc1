"""SASRec: training smoke, learning the tiny pattern, determinism, persistence, leakage."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mmsrarec.data import Dataset
from mmsrarec.errors import ConfigError, NotPreparedError
from mmsrarec.metrics import ndcg, ranks_from_scores
from mmsrarec.models.sasrec import SASRecConfig
from mmsrarec.recommenders import sasrec as sasrec_module
from mmsrarec.recommenders.base import Query
from mmsrarec.recommenders.sasrec import SASRecRecommender, load_sasrec
from mmsrarec.training.sasrec_trainer import masked_full_scores, score_histories, training_windows

TINY = SASRecConfig(
    max_len=8,
    hidden=16,
    layers=1,
    heads=2,
    dropout=0.1,
    lr=1e-2,
    batch_size=4,
    max_epochs=40,
    patience=40,
    eval_every=1,
)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _fit(dataset: Dataset, seed: int = 0, config: SASRecConfig = TINY, save_dir=None):
    recommender = SASRecRecommender(config, save_dir=save_dir, progress=False)
    recommender.fit(dataset, seed)
    return recommender


def _state(recommender: SASRecRecommender) -> dict[str, torch.Tensor]:
    assert recommender.model is not None
    return {k: v.clone() for k, v in recommender.model.state_dict().items()}


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _full_ndcg10(scores: np.ndarray, dataset: Dataset, stage: str) -> float:
    users = dataset.eval_users
    histories = [dataset.history(u, stage) for u in users]
    targets = [dataset.target(u, stage) for u in users]
    masked = masked_full_scores(scores.astype(np.float64), histories, targets)
    return ndcg(ranks_from_scores(masked, np.asarray(targets)), 10)


def test_config_checks_name_the_setting():
    with pytest.raises(ConfigError, match="`heads`"):
        SASRecConfig(hidden=10, heads=3)
    with pytest.raises(ConfigError, match="`loss`"):
        SASRecConfig(loss="mse")  # type: ignore[arg-type]


def test_training_windows_cover_every_transition_once():
    windows = training_windows([[1, 2, 3, 4, 5, 6, 7], [8], [9, 10]], max_len=3)
    assert windows == [[4, 5, 6, 7], [1, 2, 3, 4], [9, 10]]
    transitions = sum(len(w) - 1 for w in windows)
    assert transitions == 6 + 0 + 1


def test_loss_is_finite_and_decreases(tiny_dataset):
    recommender = _fit(tiny_dataset)
    losses = [row["loss"] for row in recommender.meta["log"]]
    assert len(losses) == TINY.max_epochs
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.5 * losses[0]


def test_bce_loss_option_trains(tiny_dataset):
    recommender = _fit(tiny_dataset, config=replace(TINY, loss="bce", max_epochs=5))
    assert all(math.isfinite(row["loss"]) for row in recommender.meta["log"])


def test_learns_the_sequential_pattern_better_than_popularity(tiny_dataset):
    recommender = _fit(tiny_dataset)
    queries = [Query.from_dataset(tiny_dataset, u, "valid", False) for u in tiny_dataset.eval_users]
    scores = recommender.score_catalog(queries)
    assert scores.shape == (len(queries), tiny_dataset.n_items + 1)
    popularity = np.tile(
        np.asarray(tiny_dataset.train_popularity(), dtype=np.float64), (len(queries), 1)
    )
    learned = _full_ndcg10(scores, tiny_dataset, "valid")
    assert learned > _full_ndcg10(popularity, tiny_dataset, "valid") + 0.2
    assert recommender.meta["best_valid_ndcg10"] == pytest.approx(learned, abs=1e-6)


def test_deterministic_for_a_seed(tiny_dataset):
    first, again, other = _fit(tiny_dataset, 0), _fit(tiny_dataset, 0), _fit(tiny_dataset, 1)
    assert _same_state(_state(first), _state(again))
    assert not _same_state(_state(first), _state(other))


def test_test_stage_is_never_read(tiny_dataset):
    """Swapping every test target (the last item) must not change the trained weights."""
    swapped = {
        user: [*seq[:-1], (seq[-1] % tiny_dataset.n_items) + 1]
        for user, seq in tiny_dataset.sequences.items()
    }
    altered = Dataset(tiny_dataset.name, tiny_dataset.items, swapped, tiny_dataset.negatives)
    assert all(altered.target(u, "test") != tiny_dataset.target(u, "test") for u in altered.users)
    assert _same_state(_state(_fit(tiny_dataset)), _state(_fit(altered)))


def test_save_reload_gives_identical_scores_and_reuse_skips_training(
    tiny_dataset, tmp_path: Path, monkeypatch, caplog
):
    fitted = _fit(tiny_dataset, seed=3, save_dir=tmp_path)
    folder = tmp_path / "seed3"
    assert sorted(path.name for path in folder.iterdir()) == [
        "config.json",
        "meta.json",
        "weights.pt",
    ]

    queries = [Query.from_dataset(tiny_dataset, u, "test", False) for u in tiny_dataset.eval_users]
    loaded = load_sasrec(tmp_path, 3, progress=False)
    assert loaded.config == TINY
    np.testing.assert_array_equal(fitted.score_catalog(queries), loaded.score_catalog(queries))

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a model with the same fingerprint was saved")

    monkeypatch.setattr(sasrec_module, "train_sasrec", no_training)
    with caplog.at_level(logging.INFO, logger="mmsrarec.recommenders.sasrec"):
        reused = _fit(tiny_dataset, seed=3, save_dir=tmp_path)
    assert "loaded" in caplog.text
    np.testing.assert_array_equal(fitted.score_catalog(queries), reused.score_catalog(queries))

    # Another config (or seed) is another fingerprint: it trains.
    with pytest.raises(AssertionError, match="trained although"):
        _fit(tiny_dataset, seed=3, config=replace(TINY, dropout=0.2), save_dir=tmp_path)
    with pytest.raises(AssertionError, match="trained although"):
        _fit(tiny_dataset, seed=4, save_dir=tmp_path)


def test_embed_histories_is_the_scoring_state(tiny_dataset):
    """The state the similar-users index stores is the one that scores the next item."""
    recommender = _fit(tiny_dataset, seed=0)
    train = tiny_dataset.train_sequences()
    histories = [train[u] for u in train]
    states = recommender.embed_histories(histories)
    assert states.shape == (len(histories), TINY.hidden)
    assert np.all(np.linalg.norm(states, axis=1) > 0)
    model = recommender.model
    with torch.no_grad():
        logits = model.item_logits(torch.from_numpy(states)).numpy()
    np.testing.assert_allclose(logits[:, 1:], score_histories(model, histories)[:, 1:], atol=1e-5)


def test_scoring_edge_cases(tiny_dataset):
    with pytest.raises(NotPreparedError, match="`fit`"):
        SASRecRecommender(TINY).score_catalog([Query("u", (1, 2))])
    with pytest.raises(NotPreparedError, match="seed7"):
        load_sasrec(Path("/nonexistent"), 7)
    recommender = _fit(tiny_dataset)
    long_history = tuple(range(1, 31))  # longer than max_len: only the last 8 items count
    scores = recommender.score_catalog(
        [Query("new", ()), Query("new", long_history), Query("new", long_history[-8:])]
    )
    assert np.isfinite(scores[:, 1:]).all() and np.isneginf(scores[:, 0]).all()
    np.testing.assert_allclose(scores[1], scores[2], rtol=1e-5, atol=1e-5)
