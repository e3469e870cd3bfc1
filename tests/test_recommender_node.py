"""The recommend node: one scorer call per user, stable ranking, evidence, declared keys only."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from chat_fakes import MemoryKeywords
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from mmsrarec.data import Item
from mmsrarec.nodes.context import GraphContext, GraphSettings
from mmsrarec.nodes.recommender import recommend
from mmsrarec.nodes.state import RecommendationState
from mmsrarec.recommenders.base import Recommender
from mmsrarec.scoring import SharedPrefixScorer
from mmsrarec.trace import verify_trace
from mmsrarec.types import SimilarUser

DECLARED = RecommendationState.__required_keys__ | RecommendationState.__optional_keys__
SCORES = {"m10": 0.2, "m11": 0.9, "m12": 0.5, "m13": 0.9, "m14": 0.1, "m15": 0.5}


class FakeScorer:
    """Scores each suffix by the candidate id hidden in the item text; records its calls."""

    name = "fake-scorer"

    def __init__(self, by_title: dict[str, float]) -> None:
        self.by_title = by_title
        self.calls: list[tuple[str, list[str]]] = []

    def score(self, prefix: str, suffixes: Sequence[str]) -> list[float]:
        self.calls.append((prefix, list(suffixes)))
        return [
            next(v for t, v in self.by_title.items() if f"<candidate>{t}." in s) for s in suffixes
        ]


class FakePreference:
    def __init__(self) -> None:
        self.seen: list[tuple[str, list[str]]] = []

    def preference(self, user_id: str, items: Sequence[Item]) -> str:
        self.seen.append((user_id, [item.item_id for item in items]))
        return "Likes movies."


def make_context(dataset, scorer, preference=None, n_history=3) -> GraphContext:
    return GraphContext(
        dataset=dataset,
        summarizer=None,
        critic=None,
        keywords=MemoryKeywords(),
        retriever=None,
        scorer=scorer,
        preference=preference,
        settings=GraphSettings(n_history=n_history),
    )


def make_state(dataset, candidates: list[str], top_k: int = 4) -> RecommendationState:
    history = [f"m{i}" for i in range(1, 8)]
    return {
        "user_id": "u0",
        "history": history,
        "candidates": candidates,
        "top_k": top_k,
        "summaries": {
            "m7": {
                "item_id": "m7",
                "keywords": ["space opera", "laser"],
                "reward": None,
                "components": {},
                "rounds": 0,
                "source": "cache",
            },
            "m12": {
                "item_id": "m12",
                "keywords": ["laser"],
                "reward": None,
                "components": {},
                "rounds": 0,
                "source": "cache",
            },
        },
        "similar_users": [
            SimilarUser(
                user_id="u5",
                similarity=0.7,
                next_item_id="m13",
                next_title="Movie 13",
                keywords=["documentary"],
            ),
        ],
    }


@pytest.fixture
def scorer(tiny_dataset) -> FakeScorer:
    titles = {dataset_item.title: 0.0 for dataset_item in tiny_dataset.items}
    titles.update({f"Movie {key[1:]}": value for key, value in SCORES.items()})
    return FakeScorer(titles)


def test_recommend_ranks_stably_with_evidence(tiny_dataset, scorer):
    preference = FakePreference()
    context = make_context(tiny_dataset, scorer, preference)
    candidates = list(SCORES)
    out = recommend(make_state(tiny_dataset, candidates), Runtime(context=context))

    assert set(out) <= DECLARED and set(out) == {"preference", "recommendations", "trace"}
    ranked = [r["item_id"] for r in out["recommendations"]]
    assert ranked == ["m11", "m13", "m12", "m15"]  # ties keep the candidates' order
    assert [r["score"] for r in out["recommendations"]] == [0.9, 0.9, 0.5, 0.5]
    assert out["recommendations"][0]["title"] == "Movie 11"
    evidence = {r["item_id"]: r["evidence"] for r in out["recommendations"]}
    support = "supporting, not the cause: "
    assert evidence["m12"] == support + "matches history: laser (Movie 7)"  # its keywords
    assert evidence["m13"] == support + "similar users chose: Movie 13 (this item)"
    assert evidence["m11"] == support + "no keyword overlap"
    top = out["recommendations"][0]  # the prompt scorer: one part, nothing re-scored
    assert top["contributions"] == {"fake-scorer": 0.9} and top["cited_history"] == []
    assert top["supporting_keywords"] == [] and top["supporting_users"] == []

    assert len(scorer.calls) == 1  # all candidates in one call, one shared prefix
    prefix, suffixes = scorer.calls[0]
    assert len(suffixes) == len(candidates)
    assert "Movie 5" in prefix and "Movie 7" in prefix and "Movie 4" not in prefix  # last n=3
    assert "space opera, laser" in prefix and "Likes movies." in prefix
    assert preference.seen == [("u0", ["m1", "m2", "m3", "m4"])]  # older history only
    assert out["preference"] == "Likes movies."

    (record,) = out["trace"]
    assert record["node"] == "recommend" and record["model"] == "fake-scorer"
    assert record["outputs"]["scores"] == SCORES


def test_recommend_without_preference_summarizer(tiny_dataset, scorer):
    out = recommend(
        make_state(tiny_dataset, ["m10", "m14"], top_k=10),
        Runtime(context=make_context(tiny_dataset, scorer)),
    )
    assert out["preference"] == ""
    assert [r["item_id"] for r in out["recommendations"]] == ["m10", "m14"]


def test_recommend_refuses_a_scorer_that_returns_the_wrong_count(tiny_dataset):
    class Short:
        name = "short"

        def score(self, prefix, suffixes):
            return [0.5]

    with pytest.raises(ValueError, match="1 scores for 2 candidates"):
        recommend(
            make_state(tiny_dataset, ["m10", "m11"]),
            Runtime(context=make_context(tiny_dataset, Short())),
        )


def test_recommend_inside_a_graph_keeps_declared_keys_and_trace_chain(tiny_dataset, scorer):
    builder = StateGraph(RecommendationState, context_schema=GraphContext)
    builder.add_node("recommend", recommend)
    builder.add_edge(START, "recommend")
    builder.add_edge("recommend", END)
    graph = builder.compile()
    result = graph.invoke(
        make_state(tiny_dataset, list(SCORES), top_k=2), context=make_context(tiny_dataset, scorer)
    )
    assert [r["item_id"] for r in result["recommendations"]] == ["m11", "m13"]
    assert verify_trace(result["trace"]) is None


def test_recommend_with_the_tiny_llm(tiny_dataset, tiny_llm):
    context = make_context(tiny_dataset, SharedPrefixScorer(tiny_llm))
    out = recommend(make_state(tiny_dataset, list(SCORES), top_k=6), Runtime(context=context))
    scores = [r["score"] for r in out["recommendations"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert out["trace"][0]["model"] == tiny_llm.name


class CountingRanker(Recommender):
    """A catalog ranker (item-kNN underneath) that records the queries it scores."""

    name = "item-knn"

    def __init__(self, dataset) -> None:
        from mmsrarec.recommenders.itemknn import ItemKNNRecommender

        self.inner = ItemKNNRecommender()
        self.inner.fit(dataset, 0)
        self.queries = []

    def score_catalog(self, queries):
        return self.inner.score_catalog(queries)

    def score_candidates(self, queries):
        self.queries.extend(queries)
        return self.inner.score_candidates(queries)


def test_a_catalog_ranker_scores_all_candidates_in_one_pass(tiny_dataset, scorer):
    from mmsrarec.recommenders.base import Query

    ranker = CountingRanker(tiny_dataset)
    context = make_context(tiny_dataset, scorer)
    context.ranker = ranker  # type: ignore[assignment]
    candidates = [f"m{i}" for i in range(8, 30)]
    state = {**make_state(tiny_dataset, candidates, top_k=30), "debias": 0.0}
    out = recommend(state, Runtime(context=context))

    assert scorer.calls == []  # the yes/no prompt scorer is not asked
    # One pass ranks every candidate and gives each score's parts; the evidence then re-scores
    # the recommended items (leave-one-out): the history, then without each of its items.
    query, loo, *removals = ranker.queries
    ranked = tuple(tiny_dataset.index_of(r["item_id"]) for r in out["recommendations"])
    assert loo == Query("u0", query.history, ranked)
    assert [set(query.history) - set(q.history) for q in removals] == [
        {i} for i in query.history
    ] and all(q.candidates == ranked for q in removals)
    assert [tiny_dataset.item(i).item_id for i in query.history] == state["history"]
    expected = ranker.inner.score_candidates(
        [Query("u0", query.history, tuple(tiny_dataset.index_of(c) for c in candidates))]
    )[0]
    by_id = {rec["item_id"]: rec["score"] for rec in out["recommendations"]}
    assert by_id == pytest.approx(dict(zip(candidates, expected.tolist(), strict=True)))
    scores = [rec["score"] for rec in out["recommendations"]]
    assert scores == sorted(scores, reverse=True)
    assert out["trace"][0]["model"] == "item-knn"


def test_unknown_scorer_is_refused():
    with pytest.raises(ValueError, match="unknown scorer"):
        GraphSettings(scorer="oracle")
    assert GraphSettings().scorer == "mmsrarec"
    assert GraphSettings(scorer="yes-no").scorer == "yes-no"
