"""The new-releases split: no cold interaction reaches a fit, and models with a text
fallback rank items that have no interactions by what their text says."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from mmsrarec.config import Settings
from mmsrarec.data import Dataset, Item, load_dataset, prepare_dataset
from mmsrarec.data.coldstart import ColdRule, cold_items, new_releases, pseudo_cold
from mmsrarec.errors import ConfigError, DataError
from mmsrarec.evaluation.protocols import evaluate_full, evaluate_sampled, evaluate_shelf
from mmsrarec.models import load_llm
from mmsrarec.models.item_lm import ItemLM, ItemLMConfig, add_lora, truncated_backbone
from mmsrarec.models.sasrec import SASRecConfig
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.recommenders.fusion import FusionRecommender
from mmsrarec.recommenders.itemknn import ItemKNNRecommender
from mmsrarec.recommenders.popularity import PopularityRecommender
from mmsrarec.recommenders.sasrec import SASRecRecommender, sasrec_fingerprint
from mmsrarec.tools.index import kb_entries
from mmsrarec.training.item_lm_trainer import score_histories, train_item_lm, user_windows

torch.set_num_threads(1)

KINDS = ["green tea", "black tea", "coffee", "cocoa"]
N_ITEMS = 80  # item i is of kind i % 4; items 61..80 are released in June (new)


def write_shop(folder: Path, n_users: int = 80) -> Path:
    """A shop whose users each buy one kind only: a content pattern that text reveals."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "catalog.jsonl").open("w", encoding="utf-8") as handle:
        for i in range(1, N_ITEMS + 1):
            month = 6 if i > 60 else 1 + (i - 1) // 12
            row = {
                "item_id": f"p{i}",
                "title": f"Blend {i}",
                "description": f"A {KINDS[i % 4]}.",
                "release": f"2024-{month:02d}-01",
            }
            handle.write(json.dumps(row) + "\n")  # fmt: skip
    with (folder / "interactions.jsonl").open("w", encoding="utf-8") as handle:
        for u in range(n_users):
            own = [i for i in range(1, N_ITEMS + 1) if i % 4 == u % 4]  # 15 old, 5 new
            bought = rng.sample(own[:15], 11) + rng.sample(own[15:], 2)
            rng.shuffle(bought)
            for t, item in enumerate(bought):
                row = {"user_id": f"u{u}", "item_id": f"p{item}", "timestamp": 1000 * u + t}
                handle.write(json.dumps(row) + "\n")
    return folder


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    tmp = tmp_path_factory.mktemp("shop")
    folder, _ = prepare_dataset(write_shop(tmp / "src"), tmp / "data", negatives=10)
    return new_releases(load_dataset(folder), ColdRule.parse("release>=2024-06-01"))


def kind_of(dataset: Dataset, index: int) -> str:
    return dataset.item(index).text.split("A ", 1)[1].rstrip(".")


# --- The split --------------------------------------------------------------------------------


def test_the_rule_picks_the_new_releases_and_they_never_reach_training(shop):
    assert shop.cold == frozenset(range(61, 81))
    assert not any(set(seq) & shop.cold for seq in shop.train_sequences().values())
    counts = np.asarray(shop.train_popularity())
    assert counts[sorted(shop.cold)].sum() == 0 and counts[1:61].sum() > 0
    assert all(shop.target(u, "valid") not in shop.cold for u in shop.valid_users)
    assert len(shop.valid_users) < len(shop.eval_users)  # some validation targets were cold
    users, histories, next_items = kb_entries(shop)  # the similar-users knowledge base
    assert not any(set(h) & shop.cold for h in histories)
    assert not {shop.index_of(i) for i in next_items} & shop.cold
    # ... and they stay in the catalog and the histories the models read at test time
    assert any(set(shop.history(u, "test")) & shop.cold for u in shop.eval_users)


def scrambled(dataset: Dataset) -> Dataset:
    """The same split, every cold interaction before the test replaced by another cold item:
    a fit that reads no cold interaction cannot tell the two apart."""
    cold = sorted(dataset.cold)
    rng = random.Random(1)
    sequences = {
        user: [rng.choice(cold) if i in dataset.cold else i for i in seq[:-1]] + seq[-1:]
        for user, seq in dataset.sequences.items()
    }
    return Dataset(dataset.name, dataset.items, sequences, dataset.negatives,
                   dataset.timestamps, dataset.cold, dataset.cold_rule)  # fmt: skip


class ByText(Recommender):
    """Scores items by the kind of the user's last history item: reads text, has no IDs."""

    reads_text = True

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def fit(self, dataset, seed):
        self.kinds = np.array([-1] + [i % 4 for i in range(1, dataset.n_items + 1)])

    def score_catalog(self, queries):
        last = np.array([self.kinds[q.history[-1]] if q.history else -1 for q in queries])
        return self.weight * (self.kinds[None, :] == last[:, None]).astype(float)


def test_no_fit_can_tell_the_cold_interactions_apart(shop, tmp_path):
    other = scrambled(shop)
    assert other.sequences != shop.sequences
    assert other.train_sequences() == shop.train_sequences()
    assert other.train_popularity() == shop.train_popularity()
    assert other.valid_users == shop.valid_users
    config = SASRecConfig(hidden=8, heads=1, layers=1, max_epochs=1)
    assert sasrec_fingerprint(config, other, 0) == sasrec_fingerprint(config, shop, 0)
    knn = [ItemKNNRecommender(), ItemKNNRecommender()]
    for model, data in zip(knn, (shop, other), strict=True):
        model.fit(data, 0)
    np.testing.assert_array_equal(knn[0].similarity.toarray(), knn[1].similarity.toarray())
    windows = [[w.items for w in user_windows(d.train_sequences(), 5)] for d in (shop, other)]
    assert windows[0] == windows[1]
    gates = []
    for data in (shop, other):  # the gate: cold items out of the validation histories
        fusion = FusionRecommender({"text": ByText(), "popular": PopularityRecommender()})
        fusion.fit(data, 0)
        gates.append((fusion.gate, fusion.new_item_gate))
    np.testing.assert_array_equal(gates[0][0], gates[1][0])
    np.testing.assert_array_equal(gates[0][1], gates[1][1])


def test_pseudo_cold_items_are_the_newest_warm_releases(shop):
    pseudo = pseudo_cold(shop)
    assert pseudo and not pseudo & shop.cold
    # as many as the 20 new items: May's 12 releases, then April's 12 (ties stay together)
    newest = {i for i in range(1, 61) if shop.item(i).fields["release"] >= "2024-04-01"}
    assert pseudo == newest and len(newest) == 24


def test_cold_rules_by_field_first_seen_and_ids(shop, tmp_path):
    listed = tmp_path / "new.txt"
    listed.write_text("p1\np2\n", encoding="utf-8")
    assert cold_items(shop, ColdRule.parse(f"ids:{listed}")) == {1, 2}
    assert cold_items(shop, ColdRule.parse("ids:p3,p4")) == {3, 4}
    first: dict[int, float] = {}
    for user, items in shop.sequences.items():
        for item, stamp in zip(items, shop.timestamps[user], strict=True):
            first[item] = min(stamp, first.get(item, np.inf))
    late = cold_items(shop, ColdRule.parse("first_seen>=2000"))
    assert late == {i for i, stamp in first.items() if stamp >= 2000} and late
    with pytest.raises(DataError, match="no item"):
        cold_items(shop, ColdRule.parse("release>=2030-01-01"))
    with pytest.raises(DataError, match="has no default"):
        new_releases(shop)  # no rule, and the dataset has no built-in one
    with pytest.raises(DataError, match="FIELD>=VALUE"):
        ColdRule.parse("release")
    with pytest.raises(DataError, match="no item of"):
        cold_items(shop, ColdRule.parse("year>=2000"))


def test_a_numeric_threshold_never_makes_an_unparsable_value_cold(ml100k):
    split = new_releases(ml100k)
    assert len(split.cold) == 288  # two items without a year ("unknown", "V") stay warm
    assert sum(split.target(u, "test") in split.cold for u in split.eval_users) == 314


# --- Models that score items without interactions ---------------------------------------------


def favourite_and_other(dataset: Dataset, user: str) -> tuple[int, int]:
    """An unseen cold item of the user's kind, and one of another kind."""
    seen = set(dataset.history(user, "test")) | {dataset.target(user, "test")}
    mine = kind_of(dataset, dataset.history(user, "test")[-1])
    unseen = [i for i in sorted(dataset.cold) if i not in seen]
    favourite = next(i for i in unseen if kind_of(dataset, i) == mine)
    other = next(i for i in unseen if kind_of(dataset, i) != mine)
    return favourite, other


def kind_features(dataset: Dataset, dim: int = 16) -> np.ndarray:
    """Text features [n_items + 1, dim]: the kind, one-hot, plus noise (row 0 zeros)."""
    rng = np.random.default_rng(0)
    features = np.zeros((dataset.n_items + 1, dim), np.float32)
    for i in range(1, dataset.n_items + 1):
        features[i, KINDS.index(kind_of(dataset, i))] = 3.0
        features[i, 4:] = rng.normal(size=dim - 4)
    return features


def assert_ranks_new_items_by_kind(dataset: Dataset, scores: np.ndarray) -> None:
    """For every test user: an unseen new item of the user's kind in the top 10 (history
    excluded) and above an unseen new item of another kind."""
    for row, user in enumerate(dataset.eval_users):
        favourite, other = favourite_and_other(dataset, user)
        ranked = scores[row].copy()
        ranked[0] = -np.inf
        ranked[dataset.history(user, "test")] = -np.inf
        top = np.argsort(-ranked)[:10]
        assert favourite in top, (user, favourite, top)
        assert ranked[favourite] > ranked[other]


def tiny_item_lm(lm_dir: Path, tmp_path: Path, dataset: Dataset, config: ItemLMConfig) -> ItemLM:
    torch.manual_seed(0)
    llm = load_llm(str(lm_dir), Settings(cache_dir=tmp_path / "cache", offline=True))
    backbone = add_lora(truncated_backbone(llm.model, 2, "pretrained"), config.lora_rank)
    ids = torch.randn(dataset.n_items + 1, 8, generator=torch.Generator().manual_seed(0))
    text = torch.from_numpy(kind_features(dataset))
    model = ItemLM(backbone, llm.model.config.hidden_size, ids, text, config.item_tokens, 0.0,
                   text_bias=config.id_dropout > 0)  # fmt: skip
    model.set_cold(dataset.cold)
    return model


def train_and_score(model: ItemLM, dataset: Dataset, config: ItemLMConfig) -> np.ndarray:
    windows = user_windows(dataset.train_sequences(), config.max_len)
    train_item_lm(model, dataset, config, 0, windows, progress=False)
    histories = [dataset.history(u, "test") for u in dataset.eval_users]
    return score_histories(model, histories, None, config.max_len)


def test_the_llm_text_fallback_ranks_a_new_item_of_the_user_s_kind(shop, tiny_lm_dir, tmp_path):
    config = ItemLMConfig(layers=2, bf16=False, lr=5e-3, max_epochs=20, patience=20,
                          batch_size=16, id_dropout=0.5)  # fmt: skip
    model = tiny_item_lm(tiny_lm_dir, tmp_path, shop, config)
    assert_ranks_new_items_by_kind(shop, train_and_score(model, shop, config))


def test_with_every_id_dropped_the_text_path_still_trains(shop, tiny_lm_dir, tmp_path):
    config = ItemLMConfig(layers=2, bf16=False, lr=5e-3, max_epochs=20, patience=20,
                          batch_size=16, id_dropout=1.0)  # fmt: skip
    model = tiny_item_lm(tiny_lm_dir, tmp_path, shop, config)
    ids_before = model.id_embedding.weight.detach().clone()
    text_before = model.text_proj.weight.detach().clone()
    windows = user_windows(shop.train_sequences(), config.max_len)
    result = train_item_lm(model, shop, config, 0, windows, progress=False)
    assert result.log[-1]["loss"] < result.log[0]["loss"] - 0.5
    torch.testing.assert_close(model.id_embedding.weight, ids_before)  # never used
    assert not torch.equal(model.text_proj.weight, text_before)
    model.set_cold(range(1, shop.n_items + 1))  # score every item by its text alone
    histories = [shop.history(u, "test") for u in shop.eval_users]
    assert_ranks_new_items_by_kind(shop, score_histories(model, histories, None, 50))


def test_an_id_only_model_cannot_score_new_items(shop, tiny_lm_dir, tmp_path):
    config = ItemLMConfig(layers=2, bf16=False, item_tokens="id", max_epochs=1)
    torch.manual_seed(0)
    llm = load_llm(str(tiny_lm_dir), Settings(cache_dir=tmp_path / "cache", offline=True))
    backbone = add_lora(truncated_backbone(llm.model, 2, "pretrained"), config.lora_rank)
    model = ItemLM(backbone, llm.model.config.hidden_size, torch.randn(shop.n_items + 1, 8),
                   None, "id", 0.0)  # fmt: skip
    model.set_cold(shop.cold)
    user = shop.eval_users[0]
    history = shop.history(user, "test")
    scores = score_histories(model, [history], None, 50)
    assert np.isneginf(scores[0, sorted(shop.cold)]).all()
    known = [i for i in history if i not in shop.cold]  # new items in the history are skipped
    np.testing.assert_array_equal(scores, score_histories(model, [known], None, 50))


class KindFeatures:
    """Text features that spell out the kind (as `TextFeatures` does for real text)."""

    def catalog(self, dataset):
        return kind_features(dataset)[1:]

    def of_items(self, items, item_kind):
        rows = np.zeros((len(items), 16), np.float32)
        for row, item in enumerate(items):
            rows[row, KINDS.index(item.text.split("A ", 1)[1].rstrip("."))] = 3.0
        return rows


def test_sasrec_text_ranks_a_new_item_of_the_user_s_kind(shop, tmp_path):
    config = SASRecConfig(item_init="text", hidden=16, heads=1, layers=1, max_epochs=80,
                          eval_every=5, patience=6, dropout=0.0)  # fmt: skip
    model = SASRecRecommender(config, tmp_path / "sasrec-text", progress=False,
                              text=KindFeatures())  # fmt: skip
    model.fit(shop, 0)
    assert model.reads_text
    queries = [Query.from_dataset(shop, u, "test", sampled=False) for u in shop.eval_users]
    assert_ranks_new_items_by_kind(shop, model.score_catalog(queries))
    user = shop.eval_users[0]
    mine = kind_of(shop, shop.history(user, "test")[-1])
    model.add_items(new_shop_items([mine, next(k for k in KINDS if k != mine)]))  # serving
    scores = model.score_catalog(queries[:1])[0]
    assert len(scores) == shop.n_items + 3 and scores[-2] > scores[-1]
    plain = SASRecRecommender(SASRecConfig(hidden=16, heads=1, layers=1, max_epochs=2),
                              progress=False)  # fmt: skip
    plain.fit(shop, 0)
    assert np.isneginf(plain.score_catalog(queries)[:, sorted(shop.cold)]).all()
    plain.add_items(new_shop_items(["coffee"]))
    assert np.isneginf(plain.score_catalog(queries[:1])[0, -1])


def test_the_fusion_learns_new_items_from_pseudo_cold_ones(shop):
    """A text member that knows the kinds: the gate learns to trust it on items without an
    ID, from the newest warm releases made pseudo-cold (no cold interaction is read)."""
    fusion = FusionRecommender({"text": ByText(), "popular": PopularityRecommender()})
    fusion.fit(shop, 0)
    gate = fusion.describe_gate()
    assert gate["text"]["new_items_weight"] > 0.5
    assert "new-item offset" in gate
    result = evaluate_full(fusion, shop)
    assert result.metrics["cold:NDCG@10"] > 0.1  # popularity alone: 0


# --- The protocol -------------------------------------------------------------------------------


def test_groups_and_the_shelf(shop):
    model = ByText()
    model.fit(shop, 0)
    full = evaluate_full(model, shop)
    cold = [shop.target(u, "test") in shop.cold for u in full.users]
    assert full.cold.tolist() == cold and 0 < sum(cold) < len(cold)
    assert {"NDCG@10", "cold:NDCG@10", "warm:NDCG@10"} <= set(full.metrics)
    shelf = evaluate_shelf(model, shop)
    assert shelf.users == [u for u, c in zip(full.users, cold, strict=True) if c]
    assert all(set(c.tolist()) <= shop.cold for c in shelf.candidates)  # cold items only
    assert shelf.metrics["NDCG@10"] >= full.metrics["cold:NDCG@10"]
    sampled = evaluate_sampled(model, shop)
    assert "cold:AUC" in sampled.metrics


def test_the_protocol_runs_on_a_user_s_own_jsonl_data(tmp_path, tiny_encoder_dir, monkeypatch):
    from mmsrarec.cli import app
    from mmsrarec.cli.common import run_guarded

    def main(args: list[str]) -> int:
        return run_guarded(app, args)

    write_shop(tmp_path / "shop")
    monkeypatch.setenv("MMSRAREC_EMBEDDING_MODEL", str(tiny_encoder_dir))
    base = ["--data-dir", str(tmp_path / "data")]
    assert main(["data", "prepare", "--dataset", str(tmp_path / "shop"), *base]) == 0
    report = tmp_path / "report.json"
    args = ["evaluate", "-m", "item-knn", "-m", "content-knn", "--protocol", "full",
            "--split", "new-releases", "--cold", "release>=2024-06-01", "--dataset", "shop",
            "--seeds", "1", "--run-dir", str(tmp_path / "runs"), "--json", str(report),
            *base]  # fmt: skip
    assert main(args) == 0
    saved = json.loads(report.read_text(encoding="utf-8"))
    assert saved["split"]["cold_items"] == 20
    knn = saved["methods"]["item-knn"]["mean"]
    assert knn["cold:NDCG@10"] == 0.0  # an ID-only model cannot reach a new item
    assert saved["methods"]["content-knn"]["mean"]["cold:NDCG@10"] > 0.0
    assert main(["evaluate", "--cold", "release>=2024-06-01", "--dataset", "shop",
                 *base]) == 2  # fmt: skip
    assert main(["evaluate", "--protocol", "shelf", "--dataset", "shop", *base]) == 2
    assert main(["evaluate", "--split", "new-releases", "--cold", "release", "--dataset",
                 "shop", *base]) == 2  # fmt: skip


class Unfittable(ByText):
    """A new-item member that must not be fitted where there are no new items."""

    def fit(self, dataset, seed):
        if not dataset.cold:
            raise AssertionError("a new-item member was fitted on data without new items")
        super().fit(dataset, seed)


def test_new_item_members_score_only_items_without_an_id(shop):
    standard = Dataset(shop.name, shop.items, shop.sequences, shop.negatives, shop.timestamps)
    alone = FusionRecommender({"popular": PopularityRecommender()})
    alone.fit(standard, 0)
    with_new = FusionRecommender({"popular": PopularityRecommender()}, "f", {"text": Unfittable()})
    with_new.fit(standard, 0)  # no new items: the new-item member is never fitted
    np.testing.assert_array_equal(with_new.gate, alone.gate)
    assert with_new.new_item_gate is None
    with_new.fit(shop, 0)
    gate = with_new.describe_gate()
    assert set(gate["text"]) == {"new_items_weight", "new_items_x_history_length"}
    assert gate["text"]["new_items_weight"] > 0.5
    assert evaluate_full(with_new, shop).metrics["cold:NDCG@10"] > 0.1


# --- Items added after training (serving) -------------------------------------------------------


def new_shop_items(kinds: list[str]) -> list[Item]:
    return [Item(item_id=f"new{n}", title=f"Blend new {n}", text=f"Blend new {n}. A {kind}.")
            for n, kind in enumerate(kinds)]  # fmt: skip


def test_an_item_added_after_training_is_ranked_by_its_text(shop, tiny_lm_dir, tmp_path):
    config = ItemLMConfig(layers=2, bf16=False, lr=5e-3, max_epochs=20, patience=20,
                          batch_size=16, id_dropout=0.5)  # fmt: skip
    model = tiny_item_lm(tiny_lm_dir, tmp_path, shop, config)
    train_and_score(model, shop, config)
    features = kind_features(shop)
    mine = KINDS.index(kind_of(shop, shop.history("u0", "test")[-1]))
    other = (mine + 1) % 4
    model.add_items(torch.from_numpy(features[[4 + mine, 4 + other]]), 2)  # items 4+k: kind k
    scores = score_histories(model, [shop.history("u0", "test")], None, 50)[0]
    assert len(scores) == shop.n_items + 3
    ranked = scores.copy()
    ranked[shop.history("u0", "test")] = -np.inf
    assert shop.n_items + 1 in np.argsort(-ranked)[:10]  # the new item of the user's kind
    assert scores[shop.n_items + 1] > scores[shop.n_items + 2]


class TextOnly(ByText):
    """`ByText` that takes items added after fitting (their kind read from their text)."""

    def add_items(self, items):
        added = [KINDS.index(item.text.split("A ", 1)[1].rstrip(".")) for item in items]
        self.kinds = np.concatenate([self.kinds, added])


def test_the_fusion_scores_added_items_through_its_text_members(shop):
    fusion = FusionRecommender({"popular": PopularityRecommender()}, "f", {"text": TextOnly()})
    fusion.fit(shop, 0)
    user = shop.eval_users[0]
    mine = kind_of(shop, shop.history(user, "test")[-1])
    fusion.add_items(new_shop_items([mine, next(k for k in KINDS if k != mine)]))
    scores = fusion.score_catalog([Query.from_dataset(shop, user, "test", sampled=False)])[0]
    assert len(scores) == shop.n_items + 3
    assert scores[-2] > scores[-1]  # the user's kind first
    with pytest.raises(ConfigError, match="cannot score items added"):
        FusionRecommender({"popular": PopularityRecommender()}).add_items([])
