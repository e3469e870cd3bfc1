"""Counterfactual evidence on a planted dataset: the cited history item is the planted cause,
the fusion's parts sum to its score, the popularity-bias control, the critic's rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from chat_fakes import MemoryKeywords
from langgraph.runtime import Runtime

from mmsrarec.critic.rewards import RewardWeights, describe_total, weighted_total
from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.errors import ConfigError
from mmsrarec.nodes.context import GraphContext, GraphSettings
from mmsrarec.nodes.recommender import recommend
from mmsrarec.recommenders.base import Query
from mmsrarec.recommenders.debias import DEBIAS_PART, Debiased, log_popularity
from mmsrarec.recommenders.explain import leave_one_out
from mmsrarec.recommenders.fusion import FusionRecommender
from mmsrarec.recommenders.itemknn import ItemKNNRecommender
from mmsrarec.recommenders.popularity import PopularityRecommender

CAUSE, EFFECT = "m1", "m2"  # whoever watched m1 watches m2 next
N_ITEMS = 120
FILLERS = [f"m{i}" for i in range(3, N_ITEMS + 1)]
PROBE = ["m5", "m9", "m13", "m17", "m21", "m25", "m30", CAUSE, "m34"]


def write_planted(folder: Path, users: int = 80) -> Path:
    """Random filler histories; every other user has the cause, then the effect."""
    folder.mkdir(parents=True)
    genres = ["space opera", "horror", "romantic comedy", "documentary"]
    with (folder / "catalog.jsonl").open("w") as out:
        for i in range(1, N_ITEMS + 1):
            text = f"A {genres[i % 4]} film."
            out.write(json.dumps({"item_id": f"m{i}", "title": f"Movie {i}",
                                  "description": text}) + "\n")  # fmt: skip
    rng = np.random.default_rng(0)
    with (folder / "interactions.jsonl").open("w") as out:
        for u in range(users):
            sequence = [str(x) for x in rng.choice(FILLERS, size=12, replace=False)]
            if u % 2 == 0:
                sequence[3:3] = [CAUSE, EFFECT]
            for t, item in enumerate(sequence):
                out.write(json.dumps({"user_id": f"u{u}", "item_id": item,
                                      "timestamp": 1000 + t}) + "\n")  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    folder, _ = prepare_dataset(write_planted(root / "source"), root / "data", negatives=5)
    return load_dataset(folder)


@pytest.fixture(scope="module")
def fusion(planted):
    ranker = FusionRecommender({"item-knn": ItemKNNRecommender(),
                                "most-popular": PopularityRecommender()})  # fmt: skip
    ranker.fit(planted, 0)
    return ranker


def probe(dataset, candidates=()) -> Query:
    return Query("probe", tuple(dataset.index_of(i) for i in PROBE),
                 tuple(dataset.index_of(i) for i in candidates))  # fmt: skip


def test_the_cited_history_item_is_the_planted_cause(planted, fusion):
    effect, cause = planted.index_of(EFFECT), planted.index_of(CAUSE)
    scores = fusion.score_catalog([probe(planted)])[0]
    scores[list(probe(planted).history)] = -np.inf
    assert effect in np.argsort(-scores)[:3]  # the planted effect is recommended
    counterfactual = leave_one_out(fusion, probe(planted, [EFFECT]))
    (first, drop), *_ = counterfactual.cited(0)
    assert first == cause and drop > 0
    others = np.delete(counterfactual.drops[0], PROBE.index(CAUSE))
    assert drop > 2 * others.max()  # no filler comes close


def test_fusion_parts_sum_to_its_score(planted, fusion):
    items = ["m2", "m3", "m7", "m120"]
    query = probe(planted, items)
    (parts,) = fusion.contributions([query])
    assert set(parts) == {"item-knn", "most-popular"}
    total = sum(parts.values())
    np.testing.assert_allclose(total, fusion.score_candidates([query])[0], rtol=0, atol=1e-6)
    debiased = Debiased.around(fusion, planted, 0.7)
    (parts,) = debiased.contributions([query])
    assert set(parts) == {"item-knn", "most-popular", DEBIAS_PART}
    np.testing.assert_allclose(sum(parts.values()), debiased.score_candidates([query])[0],
                               rtol=0, atol=1e-6)  # fmt: skip


def test_debiasing_subtracts_gamma_log_popularity(planted, fusion):
    query = probe(planted)
    log_pop = log_popularity(planted)
    assert log_pop[planted.index_of(EFFECT)] == pytest.approx(np.log1p(40))  # all in training
    debiased = Debiased.around(fusion, planted, 0.5).score_catalog([query])[0]
    gap = fusion.score_catalog([query])[0][1:] - debiased[1:]
    np.testing.assert_allclose(gap, 0.5 * log_pop[1:])
    same = Debiased.around(fusion, planted, 0.0).score_catalog([query])[0]
    np.testing.assert_array_equal(same[1:], fusion.score_catalog([query])[0][1:])
    for bad in (-0.1, float("nan")):
        with pytest.raises(ConfigError, match="debias"):
            Debiased(fusion, bad)


def node_context(planted, fusion, settings: GraphSettings | None = None) -> GraphContext:
    return GraphContext(dataset=planted, summarizer=None, critic=None, keywords=MemoryKeywords(),
                        retriever=None, scorer=None, settings=settings or GraphSettings(),
                        ranker=fusion)  # fmt: skip


def run_node(context, **extra):
    state = {"user_id": "probe", "history": PROBE, "top_k": 3, "similar_users": [],
             "candidates": [i for i in FILLERS + [EFFECT] if i not in PROBE], **extra}  # fmt: skip
    return recommend(state, Runtime(context=context))


def test_the_graph_cites_the_cause_and_its_parts_sum_to_the_score(planted, fusion):
    out = run_node(node_context(planted, fusion))
    by_id = {r["item_id"]: r for r in out["recommendations"]}
    effect = by_id[EFFECT]
    assert effect["cited_history"][0] == CAUSE and effect["cited_drops"][0] > 0
    assert effect["evidence"].startswith("without Movie 1 -")
    # The cause is a horror film, the effect a romantic comedy: no word supports it, and
    # the evidence says so rather than citing what merely overlaps.
    assert effect["supporting_keywords"] == [] and effect["evidence"].endswith("no keyword overlap")
    for rec in out["recommendations"]:
        assert abs(sum(rec["contributions"].values()) - rec["score"]) < 1e-6
    (record,) = out["trace"]
    assert record["outputs"]["evidence"][EFFECT]["cited_history"][0] == CAUSE


def test_debias_per_request_and_by_default_lowers_popular_items(planted, fusion):
    plain = run_node(node_context(planted, fusion))
    asked = run_node(node_context(planted, fusion), debias=5.0)
    default = run_node(node_context(planted, fusion, GraphSettings(debias=5.0)))
    assert [r["item_id"] for r in asked["recommendations"]] == [
        r["item_id"] for r in default["recommendations"]
    ]
    count = dict(zip([i.item_id for i in planted.items], planted.train_popularity()[1:],
                     strict=True))  # fmt: skip
    mean = [np.mean([count[r["item_id"]] for r in out["recommendations"]])
            for out in (plain, asked)]  # fmt: skip
    assert mean[1] < mean[0]
    for rec in asked["recommendations"]:
        assert DEBIAS_PART in rec["contributions"]
        assert abs(sum(rec["contributions"].values()) - rec["score"]) < 1e-6
    assert asked["trace"][0]["inputs"]["debias"] == 5.0


def test_the_critic_rule_is_the_weighted_total():
    weights = RewardWeights(alpha=0.5, beta=0.3, gamma=0.2, delta=0.4)
    for collab in (False, True):
        rule = describe_total(weights, collab)
        names = ["info", "recon", "len"] + ["collab"] * collab
        assert list(rule["weights"]) == ["alpha", "beta", "gamma"] + ["delta"] * collab
        assert all(f"{w}*{c}" in rule["formula"] for w, c in zip(rule["weights"], names,
                                                                 strict=True))  # fmt: skip
        for name in names:  # each term alone: its weight over the weights the rule names
            components = {key: float(key == name) for key in names}
            expected = getattr(weights, rule_weight(rule, name)) / sum(rule["weights"].values())
            assert weighted_total(components, weights) == pytest.approx(expected)


def rule_weight(rule: dict, component: str) -> str:
    return next(w for w in rule["weights"] if f"{w}*{component}" in rule["formula"])


def test_the_evidence_window_bounds_what_can_be_cited(planted, fusion):
    def cited(window: int) -> list[str]:
        settings = GraphSettings(evidence_window=window)
        out = run_node(node_context(planted, fusion, settings))
        return next(r for r in out["recommendations"] if r["item_id"] == EFFECT)["cited_history"]

    assert cited(2)[0] == CAUSE  # the cause is the second most recent item
    assert CAUSE not in cited(1) and set(cited(1)) <= {PROBE[-1]}
    assert cited(0) == []  # none tried, none cited


class CostlyKNN(ItemKNNRecommender):
    """Item-kNN that calls itself costly (as the LLM recommender does) and counts its queries."""

    name = "costly-knn"
    costly = True

    def __init__(self) -> None:
        super().__init__()
        self.scored = 0

    def score_catalog(self, queries):
        self.scored += len(queries)
        return super().score_catalog(queries)


def test_a_costly_member_rescores_only_the_screened_positions(planted):
    costly = CostlyKNN()
    fusion = FusionRecommender({"item-knn": ItemKNNRecommender(), "costly-knn": costly,
                                "most-popular": PopularityRecommender()})  # fmt: skip
    fusion.fit(planted, 0)
    query = probe(planted, [EFFECT, "m7"])
    exact = leave_one_out(fusion, query, shortlist=0)
    assert len(exact.positions) == len(PROBE)
    for ranker in (fusion, Debiased.around(fusion, planted, 0.3)):
        costly.scored = 0
        screened = leave_one_out(ranker, query, shortlist=3)
        assert costly.scored == 1 + 1 + 3  # held once, then the query and its 3 removals
        assert len(screened.positions) == 3 and PROBE.index(CAUSE) in screened.positions
        columns = np.searchsorted(exact.positions, screened.positions)
        np.testing.assert_allclose(screened.drops, exact.drops[:, columns], atol=1e-9)
        assert screened.cited(0)[0] == exact.cited(0)[0]  # the cause, with its exact drop
    assert fusion.screen(query) is not None
    assert FusionRecommender({"item-knn": ItemKNNRecommender()}).screen(query) is None
