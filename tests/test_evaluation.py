"""Protocols, baselines, the multi-seed harness, its exports and the `evaluate` command."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import typer

from mmsrarec.cli.common import run_guarded
from mmsrarec.cli.evaluate import evaluate, run_evaluation
from mmsrarec.config import load_settings
from mmsrarec.errors import ConfigError
from mmsrarec.evaluation.harness import evaluate_method, run_harness
from mmsrarec.evaluation.methods import build_method
from mmsrarec.evaluation.protocols import Protocol, evaluate_full, evaluate_sampled
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.recommenders.itemknn import ItemKNNRecommender
from mmsrarec.recommenders.popularity import PopularityRecommender
from mmsrarec.recommenders.random import RandomRecommender


def fitted(recommender: Recommender, dataset, seed: int = 0) -> Recommender:
    recommender.fit(dataset, seed)
    return recommender


class HistoryLover(Recommender):
    """Scores item i as i / n_items, and every item of the user's history highest."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        scores = np.tile(np.linspace(0.0, 1.0, self.n_items + 1), (len(queries), 1))
        for row, query in enumerate(queries):
            scores[row, list(query.history)] = 100.0
        return scores


def recompute(path: Path) -> tuple[np.ndarray, dict[str, float]]:
    """Ranks and metrics from a rankings file alone, without the project's metric code."""
    ranks, n_candidates = [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert set(row) == {"user_id", "target", "candidates", "scores"}
        assert row["candidates"][0] == row["target"]
        assert len(row["candidates"]) == len(row["scores"])
        score = lambda s: -math.inf if s is None else s  # noqa: E731
        target = score(row["scores"][0])
        ranks.append(sum(score(s) >= target for s in row["scores"][1:]))
        n_candidates.add(len(row["candidates"]))
    n = len(ranks)
    hit = lambda k: sum(r < k for r in ranks) / n  # noqa: E731
    dcg = lambda k: sum(1 / math.log2(r + 2) for r in ranks if r < k) / n  # noqa: E731
    metrics = {"HR@1": hit(1), "HR@5": hit(5), "NDCG@5": dcg(5), "HR@10": hit(10)}
    metrics |= {"NDCG@10": dcg(10), "MRR": sum(1 / (r + 1) for r in ranks) / n}
    if len(n_candidates) == 1:  # sampled protocol: every user has 1 + n candidates
        n_negatives = n_candidates.pop() - 1
        metrics["AUC"] = sum(1 - r / n_negatives for r in ranks) / n
    return np.array(ranks), metrics


# --- protocols -------------------------------------------------------------------------


def test_sampled_shapes_and_target_first(tiny_dataset) -> None:
    result = evaluate_sampled(fitted(RandomRecommender(), tiny_dataset), tiny_dataset)
    assert result.users == tiny_dataset.eval_users
    for user, candidates in zip(result.users, result.candidates, strict=True):
        assert candidates.tolist() == tiny_dataset.candidates(user, "test")
    assert result.ranks.min() >= 0 and result.ranks.max() <= 5
    assert set(result.metrics) == {"HR@1", "HR@5", "NDCG@5", "HR@10", "NDCG@10", "MRR", "AUC"}


def test_results_do_not_depend_on_batching(tiny_dataset) -> None:
    for evaluate_fn in (evaluate_sampled, evaluate_full):
        model = fitted(RandomRecommender(), tiny_dataset, seed=3)
        one = evaluate_fn(model, tiny_dataset, "valid", batch_size=256)
        many = evaluate_fn(model, tiny_dataset, "valid", batch_size=5)
        assert one.ranks.tolist() == many.ranks.tolist()
        assert one.metrics == many.metrics


def test_full_ranking_excludes_history_keeps_target(tiny_dataset) -> None:
    n_items = tiny_dataset.n_items
    result = evaluate_full(HistoryLover(n_items), tiny_dataset, "test")
    for user, rank, candidates in zip(result.users, result.ranks, result.candidates, strict=True):
        target = tiny_dataset.target(user, "test")
        history = set(tiny_dataset.history(user, "test"))
        assert candidates[0] == target
        assert not history & set(candidates.tolist())  # excluded items never listed
        assert 0 not in candidates  # nor the padding column
        expected = sum(1 for i in range(target + 1, n_items + 1) if i not in history)
        assert rank == expected  # only unseen items with a higher score rank above


def test_full_ranking_export_keeps_top_items(ml100k) -> None:
    result = evaluate_full(fitted(PopularityRecommender(), ml100k), ml100k, "test")
    counts = np.asarray(ml100k.train_popularity())
    for candidates, scores in zip(result.candidates[:20], result.scores[:20], strict=True):
        assert len(candidates) == 101
        assert np.all(np.diff(scores[1:]) <= 0)  # best first
        assert scores.tolist() == counts[candidates].tolist()


# --- baselines ---------------------------------------------------------------------------


def test_random_sampled_hr_matches_chance(ml100k) -> None:
    hr5 = [
        evaluate_sampled(fitted(RandomRecommender(), ml100k, seed), ml100k).metrics["HR@5"]
        for seed in range(3)
    ]
    assert np.mean(hr5) == pytest.approx(5 / 21, abs=0.03)


def test_popularity_beats_random_on_ml100k(ml100k) -> None:
    for evaluate_fn, metric in ((evaluate_sampled, "HR@5"), (evaluate_full, "HR@10")):
        random = evaluate_fn(fitted(RandomRecommender(), ml100k), ml100k).metrics[metric]
        popular = evaluate_fn(fitted(PopularityRecommender(), ml100k), ml100k).metrics[metric]
        assert popular > random + 0.05


def test_popularity_full_ranking_ties_are_pessimistic(ml100k) -> None:
    """79 hits of 943. METHOD.md's 0.086 (81 hits) is what ties broken in the target's favour
    give: Return of the Jedi and Contact both have 498 training interactions."""
    result = evaluate_full(fitted(PopularityRecommender(), ml100k), ml100k, "test")
    assert len(result.users) == 943
    assert int((result.ranks < 10).sum()) == 79
    assert result.metrics["HR@10"] == pytest.approx(0.0838, abs=5e-4)
    assert result.metrics["NDCG@10"] == pytest.approx(0.0432, abs=5e-4)


def test_itemknn_beats_popularity_on_sequential_pattern(tiny_dataset) -> None:
    for evaluate_fn, metric in ((evaluate_sampled, "HR@1"), (evaluate_full, "NDCG@10")):
        knn = evaluate_fn(fitted(ItemKNNRecommender(), tiny_dataset), tiny_dataset)
        pop = evaluate_fn(fitted(PopularityRecommender(), tiny_dataset), tiny_dataset)
        assert knn.metrics[metric] > pop.metrics[metric] + 0.2


def test_itemknn_fit_reads_training_only(tiny_dataset) -> None:
    """Changing every validation and test item leaves the fitted similarities unchanged."""
    model = fitted(ItemKNNRecommender(), tiny_dataset)
    for user in tiny_dataset.eval_users:
        seq = tiny_dataset.sequences[user]
        seq[-2:] = [1, 2]
    again = fitted(ItemKNNRecommender(), tiny_dataset).similarity
    assert np.array_equal(again.toarray(), model.similarity.toarray())


# --- harness and exports -------------------------------------------------------------------


def tiny_settings(tmp_path: Path, seeds: Sequence[int] = (0, 1, 2)):
    return load_settings(
        None, data_dir=tmp_path / "data", run_dir=tmp_path / "runs", dataset="tiny", seeds=seeds
    )


def test_harness_adds_reference_rows_and_summarises_seeds(tiny_dataset, tmp_path) -> None:
    results = run_harness(["item-knn", "random"], tiny_dataset, tiny_settings(tmp_path), "sampled")
    assert [r.method for r in results] == ["random", "most-popular", "item-knn"]
    popular = results[1]
    assert [run.seed for run in popular.runs] == [0, 1, 2]
    assert all(value == 0.0 for value in popular.std().values())  # deterministic method
    assert results[0].std()["MRR"] > 0.0  # random differs between seeds
    hr = [run.metrics["HR@5"] for run in results[0].runs]
    assert results[0].mean()["HR@5"] == pytest.approx(np.mean(hr))
    assert results[0].std()["HR@5"] == pytest.approx(np.std(hr, ddof=1))


@pytest.mark.parametrize("protocol", ["sampled", "full"])
def test_exports_are_valid_and_recomputable(tiny_dataset, tmp_path, protocol) -> None:
    settings = tiny_settings(tmp_path, seeds=(4, 5))
    report_path, rankings_path = tmp_path / "out" / "metrics.json", tmp_path / "out" / "r.jsonl"
    returned = run_evaluation(settings, ["item-knn"], protocol, "test", report_path, rankings_path)
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report == json.loads(json.dumps(returned))
    assert report["dataset"] == "tiny" and report["protocol"] == protocol
    assert report["stage"] == "test" and report["seeds"] == [4, 5] and report["n_users"] == 12
    assert set(report["methods"]) == {"random", "most-popular", "item-knn"}
    knn = report["methods"]["item-knn"]
    assert knn["rankings"] == str(rankings_path)
    assert all(run["fit_s"] >= 0 and run["eval_s"] >= 0 for run in knn["per_seed"])

    lines = [json.loads(line) for line in rankings_path.read_text(encoding="utf-8").splitlines()]
    assert [row["user_id"] for row in lines] == tiny_dataset.eval_users
    assert all(
        row["target"] == tiny_dataset.item(tiny_dataset.target(row["user_id"], "test")).item_id
        for row in lines
    )
    _, metrics = recompute(rankings_path)
    first_seed = knn["per_seed"][0]["metrics"]
    assert {k: metrics[k] for k in first_seed} == pytest.approx(first_seed, abs=1e-12)


def test_full_export_recomputable_on_ml100k_with_ties(ml100k, tmp_path) -> None:
    """Most-popular has tied scores around the top 100: the export must still recompute."""
    from mmsrarec.evaluation.harness import write_rankings

    for model in (PopularityRecommender(), ItemKNNRecommender()):
        result = evaluate_method(model.name, lambda m=model: m, ml100k, [0], Protocol.full).first
        path = tmp_path / f"{model.name}.jsonl"
        write_rankings(path, result, ml100k)
        ranks, metrics = recompute(path)
        assert np.array_equal(np.minimum(ranks, 100), np.minimum(result.ranks, 100))
        for key in ("HR@10", "NDCG@10"):
            assert metrics[key] == pytest.approx(result.metrics[key], abs=1e-12)


def test_several_methods_get_one_rankings_file_each(tiny_dataset, tmp_path) -> None:
    settings = tiny_settings(tmp_path, seeds=(0,))
    run_evaluation(settings, ["item-knn", "random"], "sampled", "valid", None, tmp_path / "r.jsonl")
    assert sorted(p.name for p in tmp_path.glob("r.*.jsonl")) == [
        "r.item-knn.jsonl",
        "r.random.jsonl",
    ]


def test_build_method_names(tmp_path) -> None:
    settings = tiny_settings(tmp_path)
    assert isinstance(build_method("item-knn", settings), ItemKNNRecommender)
    assert isinstance(build_method("most-popular", settings), PopularityRecommender)
    assert isinstance(build_method("random", settings), RandomRecommender)
    sasrec = build_method("sasrec", settings)
    assert sasrec.name == "sasrec"
    assert sasrec.save_dir == tmp_path / "runs" / "sasrec" / "tiny"
    with pytest.raises(ConfigError, match="unknown method `knn`; known: random, most-popular"):
        build_method("knn", settings)


# --- command line --------------------------------------------------------------------------


def cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.callback()(lambda: None)
    app.command()(evaluate)
    return app


def test_cli_unknown_method_is_one_line(capsys, tmp_path) -> None:
    code = run_guarded(cli(), ["evaluate", "--method", "nope", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "`nope`" in err and "item-knn" in err and "sasrec" in err


def test_cli_unprepared_dataset_is_one_line(capsys, tmp_path) -> None:
    args = ["evaluate", "--data-dir", str(tmp_path), "--dataset", "ml-100k"]
    code = run_guarded(cli(), args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "mmsrarec data prepare" in err


def test_cli_bad_protocol_is_a_usage_error(tmp_path) -> None:
    assert run_guarded(cli(), ["evaluate", "--protocol", "nope"]) == 2


def test_cli_prints_table_and_writes_json(tiny_dataset, tmp_path, capsys) -> None:
    out = tmp_path / "m.json"
    args = ["evaluate", "-m", "item-knn", "--protocol", "full", "--seeds", "2"]
    args += ["--data-dir", str(tmp_path / "data"), "--dataset", "tiny", "--json", str(out)]
    assert run_guarded(cli(), args) == 0
    printed = capsys.readouterr().out
    assert "most-popular" in printed and "random" in printed and "item-knn" in printed
    assert json.loads(out.read_text(encoding="utf-8"))["seeds"] == [0, 1]


def test_finished_seeds_are_kept_and_reused_after_a_kill(tiny_dataset, tmp_path):
    """`done_dir`: seeds saved as they finish; a rerun loads them (no fit) with equal
    results, the seed that was not saved runs, and other users never reuse them."""
    fits = []

    class Counting(RandomRecommender):
        def fit(self, dataset, seed):
            fits.append(seed)
            super().fit(dataset, seed)

    def run(seeds, users=None):
        return evaluate_method("counting", Counting, tiny_dataset, seeds, Protocol.sampled,
                               users=users, done_dir=tmp_path)  # fmt: skip

    first = run([0])  # as if killed before seed 1
    assert fits == [0] and (tmp_path / "counting.sampled.test.seed0.json").exists()
    again = run([0, 1])
    assert fits == [0, 1]  # seed 0 loaded, seed 1 run
    assert again.runs[0].metrics == first.runs[0].metrics
    assert [s.tolist() for s in again.first.scores] == [s.tolist() for s in first.first.scores]
    assert again.first.ranks.tolist() == first.first.ranks.tolist()
    run([0, 1], users=tiny_dataset.eval_users[:2])  # another user set: both seeds run again
    assert fits == [0, 1, 0, 1]
    (tmp_path / "counting.sampled.test.seed0.json").write_text("{not json")  # damaged file
    run([0, 1], users=tiny_dataset.eval_users[:2])
    assert fits == [0, 1, 0, 1, 0]  # seed 0 runs again, seed 1 is reused
