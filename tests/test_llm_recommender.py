"""The hybrid-token LLM recommender and the gated fusion, on tiny data and tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tiny_jsonl

from mmsrarec.config import Settings
from mmsrarec.data import Dataset, load_dataset, prepare_dataset
from mmsrarec.errors import ConfigError
from mmsrarec.evaluation.methods import METHODS, build_method
from mmsrarec.evaluation.protocols import evaluate_sampled
from mmsrarec.models import load_llm
from mmsrarec.models.item_lm import ItemLM, ItemLMConfig, add_lora, truncated_backbone
from mmsrarec.recommenders.base import Query, Recommender, Reseeded
from mmsrarec.recommenders.fusion import FusionRecommender, zscore
from mmsrarec.recommenders.methods import RESEED_OFFSET
from mmsrarec.recommenders.sasrec import SASRecRecommender
from mmsrarec.training.item_lm_trainer import (
    add_retrieval,
    score_histories,
    train_item_lm,
    user_windows,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def walk_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """60 users walking a 40-item catalog in order: item i is followed by item i + 1."""
    tmp = tmp_path_factory.mktemp("walk")
    source = write_tiny_jsonl(tmp / "src", n_users=60, n_items=40)
    folder, _ = prepare_dataset(source, tmp / "data", negatives=10)
    return load_dataset(folder)


def tiny_item_lm(lm_dir: Path, tmp_path: Path, n_items: int, **overrides) -> ItemLM:
    config = ItemLMConfig(layers=2, bf16=False, **overrides)
    torch.manual_seed(0)  # LoRA's initial weights come from the global generator
    llm = load_llm(str(lm_dir), Settings(cache_dir=tmp_path / "cache", offline=True))
    backbone = add_lora(truncated_backbone(llm.model, 2, config.backbone), config.lora_rank)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randn(n_items + 1, 8, generator=generator)  # random: nothing learned yet
    text = torch.randn(n_items + 1, 16, generator=generator)
    return ItemLM(backbone, llm.model.config.hidden_size, ids, text, config.item_tokens, 0.0)


def test_auc(model: ItemLM, dataset: Dataset) -> float:
    users = dataset.eval_users
    scores = score_histories(model, [dataset.history(u, "test") for u in users], None, 50)
    candidates = np.array([dataset.candidates(u, "test") for u in users])
    picked = np.take_along_axis(scores, candidates, axis=1)
    return float((picked[:, :1] > picked[:, 1:]).mean())


test_auc.__test__ = False  # a helper, not a test


def test_training_learns_a_planted_next_item_pattern(walk_dataset, tiny_lm_dir, tmp_path):
    model = tiny_item_lm(tiny_lm_dir, tmp_path, walk_dataset.n_items)
    before = test_auc(model, walk_dataset)
    config = ItemLMConfig(layers=2, bf16=False, lr=5e-3, max_epochs=25, patience=25,
                          batch_size=16)  # fmt: skip
    windows = user_windows(walk_dataset.train_sequences(), config.max_len)
    result = train_item_lm(model, walk_dataset, config, 0, windows, progress=False)
    after = test_auc(model, walk_dataset)
    assert 0.3 < before < 0.7
    assert after > 0.9, (before, after, result.log[-1])
    assert result.log[0]["loss"] > result.log[-1]["loss"]


def test_resumed_training_equals_an_uninterrupted_run(
    walk_dataset, tiny_lm_dir, tmp_path, monkeypatch
):
    from mmsrarec.training import item_lm_trainer

    config = ItemLMConfig(layers=2, bf16=False, max_epochs=3, patience=5, batch_size=16)
    windows = user_windows(walk_dataset.train_sequences(), config.max_len)
    straight = tiny_item_lm(tiny_lm_dir, tmp_path, walk_dataset.n_items)
    done = train_item_lm(straight, walk_dataset, config, 0, windows, progress=False)

    save = item_lm_trainer._save_checkpoint

    def save_then_die(*args, **kwargs):  # stands in for a kill right after epoch 1's save
        save(*args, **kwargs)
        raise KeyboardInterrupt

    checkpoint = tmp_path / "checkpoint.pt"
    killed = tiny_item_lm(tiny_lm_dir, tmp_path, walk_dataset.n_items)
    monkeypatch.setattr(item_lm_trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_item_lm(killed, walk_dataset, config, 0, windows, checkpoint=checkpoint,
                      progress=False)  # fmt: skip
    monkeypatch.setattr(item_lm_trainer, "_save_checkpoint", save)
    resumed = tiny_item_lm(tiny_lm_dir, tmp_path, walk_dataset.n_items)
    again = train_item_lm(resumed, walk_dataset, config, 0, windows, checkpoint=checkpoint,
                          progress=False)  # fmt: skip
    assert [row["loss"] for row in again.log] == pytest.approx([r["loss"] for r in done.log])
    for name, value in straight.trainable_state().items():
        torch.testing.assert_close(resumed.trainable_state()[name], value)


def test_windows_cover_every_training_transition_once(walk_dataset):
    train = walk_dataset.train_sequences()
    windows = user_windows(train, max_len=3)
    assert sum(len(w.items) - 1 for w in windows) == sum(max(len(s) - 1, 0) for s in train.values())
    assert all(len(w.items) <= 4 for w in windows)


def test_retrieval_tokens_see_only_what_was_known_at_the_window_start(walk_dataset):
    train = walk_dataset.train_sequences()
    windows = user_windows(train, max_len=3)
    asked = []

    def retrieve(prefixes):
        asked.extend(prefixes)
        return [[1] for _ in prefixes]

    add_retrieval(windows, train, retrieve)
    assert len(asked) == len(windows)
    for window, (user, prefix) in zip(windows, asked, strict=True):
        assert user == window.user
        seq = train[user]
        assert list(prefix) == seq[: len(prefix)]  # a prefix of the user's training items
        assert prefix[-1] == window.items[0]  # ends at the window's first input ...
        assert not set(window.items[1:]) & set(prefix)  # ... so no target is ever seen
        assert window.retrieved == [1]


def test_retrieval_tokens_never_return_the_user_itself(tiny_dataset, tmp_path):
    from mmsrarec.models.sasrec import SASRecConfig
    from mmsrarec.recommenders.sasrec import SASRecRecommender
    from mmsrarec.tools.retrieval_tokens import RetrievalTokens

    settings = Settings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d", run_dir=tmp_path / "r")
    sasrec = SASRecRecommender(SASRecConfig(hidden=8, heads=1, max_epochs=2), progress=False)
    sasrec.fit(tiny_dataset, 0)
    tokens = RetrievalTokens(settings, tiny_dataset, sasrec, k=3)
    train = tiny_dataset.train_sequences()
    for user, seq in train.items():
        found = tokens.tokens([(user, seq)])[0]
        assert len(found) == min(3, sum(1 for u, s in train.items() if u != user and len(s) >= 2))
        others = {tiny_dataset.item(s[-1]).item_id for u, s in train.items() if u != user}
        assert {tiny_dataset.item(i).item_id for i in found} <= others


def test_the_sampled_softmax_estimates_the_full_one_and_also_learns(
    walk_dataset, tiny_lm_dir, tmp_path
):
    from mmsrarec.training.item_lm_trainer import Sampled, _batch_loss, loss_for
    from mmsrarec.training.losses import sampling_log_q

    model = tiny_item_lm(tiny_lm_dir, tmp_path, walk_dataset.n_items)
    windows = user_windows(walk_dataset.train_sequences(), 50)[:8]
    log_q = sampling_log_q(walk_dataset.train_popularity())
    with torch.no_grad():
        full, n = _batch_loss(model, windows, False)
        many = Sampled(log_q, 200_000, torch.Generator().manual_seed(0))  # 5,000 draws per item
        estimate, m = _batch_loss(model, windows, False, sampled=many)
        few = Sampled(log_q, 8, torch.Generator().manual_seed(0))
        rough = _batch_loss(model, windows, False, sampled=few)[0]
    assert n == m and abs(estimate.item() - full.item()) < 0.01 * full.item()
    assert abs(rough.item() - full.item()) > abs(estimate.item() - full.item())

    trained = tiny_item_lm(tiny_lm_dir, tmp_path, walk_dataset.n_items)
    before = test_auc(trained, walk_dataset)
    config = ItemLMConfig(layers=2, bf16=False, lr=5e-3, max_epochs=25, patience=25,
                          batch_size=16, loss="sampled", sampled_negatives=16)  # fmt: skip
    windows = user_windows(walk_dataset.train_sequences(), config.max_len)
    train_item_lm(trained, walk_dataset, config, 0, windows, progress=False)
    assert test_auc(trained, walk_dataset) > max(0.9, before)
    assert loss_for(ItemLMConfig(), 20_000) == "full" and loss_for(ItemLMConfig(), 20_001) == (
        "sampled"
    )
    # a setting added after models were trained: at its default the fingerprint is unchanged
    assert "loss" not in ItemLMConfig().to_dict() and "sampled_negatives" not in (
        ItemLMConfig().to_dict()
    )
    assert ItemLMConfig(loss="sampled").digest() != ItemLMConfig().digest()
    with pytest.raises(ConfigError, match="loss"):
        ItemLMConfig(loss="approximate")  # type: ignore[arg-type]


def test_config_rejects_what_cannot_work(tiny_lm_dir, tmp_path):
    with pytest.raises(ConfigError, match="item_tokens"):
        ItemLMConfig(item_tokens="image")  # type: ignore[arg-type]
    llm = load_llm(str(tiny_lm_dir), Settings(cache_dir=tmp_path, offline=True))
    with pytest.raises(ConfigError, match="only 2"):
        truncated_backbone(llm.model, 3, "pretrained")


def test_only_lora_and_the_item_parts_are_trained(tiny_lm_dir, tmp_path):
    model = tiny_item_lm(tiny_lm_dir, tmp_path, 10)
    trained = set(model.trainable_state())
    assert any("lora_" in name for name in trained)
    assert {"id_embedding.weight", "id_proj.weight", "text_proj.weight", "item_bias"} <= trained
    assert not any(name.startswith("backbone.") and "lora_" not in name for name in trained)


def test_random_backbone_differs_from_the_pretrained_one(tiny_lm_dir, tmp_path):
    llm = load_llm(str(tiny_lm_dir), Settings(cache_dir=tmp_path, offline=True))
    torch.manual_seed(0)
    pretrained = truncated_backbone(llm.model, 2, "pretrained")
    random = truncated_backbone(llm.model, 2, "random")
    name = "layers.0.self_attn.q_proj.weight"
    assert pretrained.state_dict()[name].shape == random.state_dict()[name].shape
    assert not torch.equal(pretrained.state_dict()[name], random.state_dict()[name])


def test_the_recommender_fits_saves_and_reloads(tiny_dataset, tiny_lm_dir, tmp_path):
    from mmsrarec.recommenders.llm_recommender import LLMRecommender

    settings = Settings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d", run_dir=tmp_path / "r",
                        model=str(tiny_lm_dir), dataset=tiny_dataset.name)  # fmt: skip
    config = ItemLMConfig(layers=2, max_epochs=2, bf16=False, k_similar=2)
    first = LLMRecommender(settings, config, progress=False)
    first.fit(tiny_dataset, 0)
    folder = first.save_dir(0)
    assert (folder / "meta.json").exists() and not (folder / "checkpoint.pt").exists()
    assert (folder / "training.png").exists()
    queries = [Query.from_dataset(tiny_dataset, u, "test", True) for u in tiny_dataset.eval_users]
    scores = first.score_catalog(queries)
    assert scores.shape == (len(queries), tiny_dataset.n_items + 1)
    assert np.isneginf(scores[:, 0]).all() and np.isfinite(scores[:, 1:]).all()
    again = LLMRecommender(settings, config, progress=False)
    again.fit(tiny_dataset, 0)  # reloads: same fingerprint
    np.testing.assert_allclose(again.score_catalog(queries), scores, rtol=1e-5)
    assert again.meta["log"] == first.meta["log"]


class Fixed(Recommender):
    """Scores from a function of (user, item); `fit` does nothing."""

    def __init__(self, score) -> None:
        self.score = score

    def score_catalog(self, queries):
        n = self.n_items
        return np.array([[self.score(q, j) for j in range(n + 1)] for q in queries], float)

    def fit(self, dataset, seed):
        self.n_items = dataset.n_items


def next_item_oracle(query: Query, item: int) -> float:
    """Knows the walk: the item after the last one is best."""
    return 1.0 if query.history and item == query.history[-1] + 1 else 0.0


def noise(query: Query, item: int) -> float:
    return float(np.random.default_rng(hash((query.user_id, item)) % 2**32).normal())


def test_the_gate_trusts_the_member_that_predicts_validation(walk_dataset):
    fusion = FusionRecommender({"oracle": Fixed(next_item_oracle), "noise": Fixed(noise)})
    fusion.fit(walk_dataset, 0)
    gate = fusion.describe_gate()
    assert gate["oracle"]["weight"] > 5 * abs(gate["noise"]["weight"])
    result = evaluate_sampled(fusion, walk_dataset, "test")
    assert result.metrics["HR@1"] > 0.9


def test_the_gate_never_reads_test_labels(walk_dataset):
    """Changing every test target and test negative changes nothing the fusion fits."""
    scrambled = Dataset(
        walk_dataset.name,
        walk_dataset.items,
        {u: [*s[:-1], 1 + s[-1] % walk_dataset.n_items] for u, s in walk_dataset.sequences.items()},
        {"valid": walk_dataset.negatives["valid"],
         "test": {u: n[::-1] for u, n in walk_dataset.negatives["test"].items()}},
    )  # fmt: skip
    members = {"oracle": Fixed(next_item_oracle), "noise": Fixed(noise)}
    a, b = FusionRecommender(dict(members)), FusionRecommender(dict(members))
    a.fit(walk_dataset, 0)
    b.fit(scrambled, 0)
    np.testing.assert_array_equal(a.gate, b.gate)


def test_scoring_reads_only_the_query_histories(walk_dataset, monkeypatch):
    """After fitting, validation labels play no part: the scores are a function of queries."""
    fusion = FusionRecommender({"oracle": Fixed(next_item_oracle), "noise": Fixed(noise)})
    fusion.fit(walk_dataset, 0)
    queries = [Query.from_dataset(walk_dataset, u, "test", False) for u in walk_dataset.eval_users]
    before = fusion.score_catalog(queries)
    wiped = {user: [] for user in walk_dataset.eval_users}  # no validation negatives left
    monkeypatch.setitem(walk_dataset.negatives, "valid", wiped)  # the loaded lists are read-only
    np.testing.assert_array_equal(fusion.score_catalog(queries), before)


class Counting(Fixed):
    """A `Fixed` recommender that remembers the users of each `score_catalog` call."""

    def __init__(self, score) -> None:
        super().__init__(score)
        self.calls: list[list[str]] = []

    def score_catalog(self, queries):
        self.calls.append([q.user_id for q in queries])
        return super().score_catalog(queries)


def test_the_gate_fit_is_bounded_in_users(tmp_path, monkeypatch):
    """At most `gate_users` validation users (drawn with the seed), scored a few at a time:
    the gate's fit holds no catalog scores of every user."""
    from mmsrarec.recommenders import fusion as fusion_module

    source = write_tiny_jsonl(tmp_path / "src", n_users=60, n_items=40)
    walk = load_dataset(prepare_dataset(source, tmp_path / "data", negatives=10)[0])
    monkeypatch.setattr(fusion_module, "SCORE_CELLS", 8 * (walk.n_items + 1))
    fitted = []
    for _ in range(2):
        counting = Counting(next_item_oracle)
        fusion = FusionRecommender({"oracle": counting, "noise": Fixed(noise)}, gate_users=20)
        fusion.fit(walk, 0)
        fitted.append([u for call in counting.calls for u in call])
        assert max(len(call) for call in counting.calls) == 8
    assert len(fitted[0]) == len(set(fitted[0])) == 20 < len(walk.valid_users)
    assert fitted[0] == fitted[1]  # the same users for the same seed
    gate = fusion.describe_gate()
    assert gate["oracle"]["weight"] > 5 * abs(gate["noise"]["weight"])


def test_zscore_is_per_user_and_ignores_ruled_out_items():
    scores = np.array([[-np.inf, 1.0, 2.0, 3.0, -np.inf], [0.0, 10.0, 10.0, 40.0, 40.0]])
    z = zscore(scores)
    assert z[0, 4] == 0.0 and z[0, 0] == 0.0
    assert z[0, 1:4].mean() == pytest.approx(0.0) and z[1, 1:].std() == pytest.approx(1.0)


def test_every_new_method_builds(tmp_path):
    settings = Settings(cache_dir=tmp_path, run_dir=tmp_path)
    for name in ("llm-recommender", "llm-recommender-id-only", "cf-ensemble", "mmsrarec",
                 "mmsrarec-yes-no", "cf-ensemble-two-sasrec", "mmsrarec-four-texts"):  # fmt: skip
        assert name in METHODS
        assert build_method(name, settings).name == name
    fused = build_method("mmsrarec", settings)
    assert list(fused.members) == ["llm-recommender", "sasrec", "item-knn"]
    second = build_method("cf-ensemble-two-sasrec", settings).members["sasrec-reseeded"]
    assert isinstance(second.member, SASRecRecommender) and second.offset == RESEED_OFFSET


class Recording(Fixed):
    """A `Fixed` recommender that remembers the seed it was fitted with."""

    def fit(self, dataset, seed):
        super().fit(dataset, seed)
        self.seed = seed


def test_a_reseeded_member_is_fitted_with_its_own_seed(walk_dataset):
    inner = Recording(next_item_oracle)
    second = Reseeded(inner, 100, "oracle-reseeded")
    fusion = FusionRecommender({"oracle": Recording(next_item_oracle), "second": second})
    fusion.fit(walk_dataset, 2)
    assert fusion.members["oracle"].seed == 2 and inner.seed == 102
    queries = [Query.from_dataset(walk_dataset, u, "test", False) for u in walk_dataset.eval_users]
    np.testing.assert_array_equal(second.score_catalog(queries), inner.score_catalog(queries))


@pytest.mark.integration
@pytest.mark.slow
def test_the_packaged_model_learns_on_ml100k(ml100k, tmp_path):
    """SmolLM2-135M (2 of its layers, LoRA) for one epoch beats most-popular on validation,
    and the graph's recommend node ranks the whole catalog with it in one pass per user."""
    from langgraph.runtime import Runtime

    from mmsrarec.models.sasrec import SASRecConfig
    from mmsrarec.nodes.recommender import recommend
    from mmsrarec.recommenders.explain import leave_one_out
    from mmsrarec.recommenders.llm_recommender import LLMRecommender
    from mmsrarec.recommenders.popularity import PopularityRecommender
    from mmsrarec.recommenders.sasrec import SASRecRecommender

    torch.set_num_threads(2)
    settings = Settings(run_dir=tmp_path / "runs", dataset=ml100k.name)  # default cache: reused
    sasrec_dir = settings.run_dir / "sasrec" / ml100k.name
    SASRecRecommender(SASRecConfig(max_epochs=2), save_dir=sasrec_dir, progress=False).fit(
        ml100k, 0
    )
    config = ItemLMConfig(layers=2, max_epochs=1)
    recommender = LLMRecommender(settings, config, progress=False,
                                 sasrec_config=SASRecConfig(max_epochs=2))  # fmt: skip
    recommender.fit(ml100k, 0)
    popular = PopularityRecommender()
    popular.fit(ml100k, 0)
    valid = evaluate_sampled(recommender, ml100k, "valid").metrics["NDCG@5"]
    assert valid > evaluate_sampled(popular, ml100k, "valid").metrics["NDCG@5"] + 0.05

    from chat_fakes import MemoryKeywords

    from mmsrarec.nodes.context import GraphContext, GraphSettings

    context = GraphContext(ml100k, None, None, MemoryKeywords(), None, None,
                           settings=GraphSettings(), ranker=recommender)  # type: ignore[arg-type]  # fmt: skip
    history = [ml100k.item(i).item_id for i in ml100k.history("1", "test")]
    candidates = [item.item_id for item in ml100k.items if item.item_id not in set(history)]
    state = {"user_id": "1", "history": history, "candidates": candidates, "top_k": 10}
    out = recommend(state, Runtime(context=context))
    assert len(out["recommendations"]) == 10
    assert out["trace"][0]["model"] == "llm-recommender"
    recs = out["recommendations"]
    # The cause, checked by re-scoring: an item cites the history items whose removal lowers
    # its score, and cites none only where no single removal lowers it.
    query = Query("1", tuple(ml100k.index_of(i) for i in history),
                  tuple(ml100k.index_of(rec["item_id"]) for rec in recs))  # fmt: skip
    drops = leave_one_out(recommender, query).drops
    for row, rec in enumerate(recs):  # its parts (its own score, the debiasing) and the cause
        assert abs(sum(rec["contributions"].values()) - rec["score"]) < 1e-6
        assert set(rec["cited_history"]) <= set(history)
        assert all(drop > 0 for drop in rec["cited_drops"])
        if rec["cited_drops"]:
            assert rec["cited_drops"][0] == pytest.approx(drops[row].max(), abs=1e-5)
        else:
            assert drops[row].max() <= 1e-6
    assert any(rec["cited_history"] for rec in recs)  # the model reads the history


def test_train_command_trains_and_reloads(tiny_source, tiny_lm_dir, tmp_path, capsys):
    from mmsrarec.cli import app
    from mmsrarec.cli.common import run_guarded

    base = ["--data-dir", str(tmp_path / "d"), "--run-dir", str(tmp_path / "r"),
            "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    assert run_guarded(app, ["data", "prepare", "--dataset", str(tiny_source), *base[:2]]) == 0
    args = ["train", "llm-recommender", "--layers", "2", "--epochs", "1", "--cpu",
            "--model", str(tiny_lm_dir), "--dataset", "tiny", *base]  # fmt: skip
    assert run_guarded(app, args) == 0
    out = capsys.readouterr().out
    assert "llm-recommender seed 0: best epoch 1" in out
    folder = tmp_path / "r" / "llm-recommender" / "tiny" / "llm-recommender" / "seed0"
    assert (folder / "meta.json").exists()


def test_train_command_unknown_variant_is_one_line(capsys, tmp_path):
    from mmsrarec.cli import app
    from mmsrarec.cli.common import run_guarded

    code = run_guarded(app, ["train", "llm-recommender", "--variant", "nope"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "`nope`" in err


def test_recommend_unknown_scorer_is_one_line(capsys):
    from mmsrarec.cli import app
    from mmsrarec.cli.common import run_guarded

    code = run_guarded(app, ["recommend", "--user", "1", "--scorer", "oracle"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "unknown scorer" in err


KILL_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from pathlib import Path
from mmsrarec.config import Settings
from mmsrarec.data import load_dataset
from mmsrarec.models.item_lm import ItemLMConfig
from mmsrarec.recommenders.llm_recommender import LLMRecommender
from mmsrarec.recommenders.sasrec import SASRecConfig
root = Path(sys.argv[1])
settings = Settings(cache_dir=root / "c", data_dir={data!r}, run_dir=root / "r",
                    model={model!r}, dataset="tiny")
config = ItemLMConfig(layers=2, bf16=False, max_epochs=40, patience=40, batch_size=4)
LLMRecommender(settings, config, progress=False,
               sasrec_config=SASRecConfig(hidden=8, heads=1, max_epochs=2)).fit(
    load_dataset(Path({data!r}) / "tiny"), 0)
"""


@pytest.mark.slow
def test_a_killed_training_resumes_to_the_same_result(tiny_source, tiny_lm_dir, tmp_path):
    """kill -9 in the middle of training, run again: it continues from the last finished
    epoch and ends where an uninterrupted run ends."""
    import json
    import subprocess
    import sys
    import time

    prepare_dataset(tiny_source, tmp_path / "data", negatives=5)
    script = tmp_path / "fit.py"
    tests = str(Path(__file__).parent)
    script.write_text(KILL_SCRIPT.format(tests=tests, data=str(tmp_path / "data"),
                                         model=str(tiny_lm_dir)))  # fmt: skip

    def run(root: Path) -> dict:
        subprocess.run([sys.executable, str(script), str(root)], check=True, timeout=600)
        folder = root / "r" / "llm-recommender" / "tiny" / "llm-recommender" / "seed0"
        return json.loads((folder / "meta.json").read_text(encoding="utf-8"))

    straight = run(tmp_path / "straight")
    killed = tmp_path / "killed"
    checkpoint = killed / "r" / "llm-recommender" / "tiny" / "llm-recommender" / "seed0"
    process = subprocess.Popen([sys.executable, str(script), str(killed)])
    deadline = time.monotonic() + 300
    while not (checkpoint / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # a little later: the kill lands mid-epoch or mid-write
    process.kill()
    process.wait()
    assert not (checkpoint / "meta.json").exists(), "the run finished before the kill"
    resumed = run(killed)
    assert [r["loss"] for r in resumed["log"]] == pytest.approx(
        [r["loss"] for r in straight["log"]]
    )
    assert resumed["best_epoch"] == straight["best_epoch"]


def test_keyword_texts_come_from_the_summarizers_cache(tiny_dataset, tmp_path):
    from mmsrarec.errors import NotPreparedError
    from mmsrarec.models.item_text import item_texts
    from mmsrarec.summarization.cache import KeywordCache
    from mmsrarec.summarization.keywords import stored_keywords
    from mmsrarec.summarization.prompts import PROMPT_VERSION

    settings = Settings(cache_dir=tmp_path)
    with pytest.raises(NotPreparedError, match="mmsrarec summarize"):
        stored_keywords(settings, tiny_dataset, "m")
    item = tiny_dataset.item(3)
    with KeywordCache(tmp_path / "keywords.sqlite", "m", PROMPT_VERSION) as cache:
        cache.put(item, ["space", "laser duel"], 0.7)
        cache.put(tiny_dataset.item(4), [], 0.1)  # an empty list is no keywords
    keywords = stored_keywords(settings, tiny_dataset, "m")
    assert keywords == {item.item_id: ["space", "laser duel"]}
    texts = item_texts(tiny_dataset, keywords)
    assert texts[2] == f"{item.title}: space, laser duel"
    assert texts[3].startswith(tiny_dataset.item(4).title)
    assert stored_keywords(settings, tiny_dataset, "another-model") == {}
