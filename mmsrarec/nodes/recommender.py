"""Last node: score every candidate, rank, explain.

With a catalog ranker in the context (the default: the fused LLM recommender), one forward
per user scores every item and the candidates' scores are read from it. Otherwise (the
paper's yes/no variant) the prompt holds the keywords of the user's last n items, a
sentence on the older history (when a preference summarizer is configured) and the
collaborative keywords; each candidate adds only its own text. All candidates go to the
scorer in one call, so a scorer that reuses the prefix (`SharedPrefixScorer`) encodes it
once per user.
"""

from __future__ import annotations

import math
from typing import Any

from langgraph.runtime import Runtime

from mmsrarec.data import Dataset, Item
from mmsrarec.nodes.context import GraphContext
from mmsrarec.nodes.state import RecommendationState
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.scoring.evidence import evidence_for
from mmsrarec.scoring.prompts import build_prefix, candidate_suffix
from mmsrarec.trace import traced
from mmsrarec.types import Recommendation

TRACED = 100  # candidates whose score the trace keeps (the best ones)


def ranker_scores(
    ranker: Recommender, dataset: Dataset, user_id: str, history: list[str], items: list[Item]
) -> list[float]:
    """The ranker's scores of `items` for this history: one catalog pass, then a gather."""
    query = Query(
        user_id,
        tuple(dataset.index_of(item_id) for item_id in history),
        tuple(dataset.index_of(item.item_id) for item in items),
    )
    return [float(s) for s in ranker.score_candidates([query])[0]]


def recommend(state: RecommendationState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Rank `state["candidates"]` by the catalog ranker's score, or by
    `p(yes) / (p(yes) + p(no))` without one; best first.

    The prompt is rendered with the scorer's `llm` (chat template, special tokens) when it has
    one, else as plain text. Sorting is stable: equal scores keep the candidates' order.

    Returns:
        `preference` (the older-history sentence, "" without a summarizer), the top
        `state["top_k"]` (+ `settings.overfetch`) `recommendations` with evidence, and one
        `trace` record holding the best `TRACED` candidates' scores (every one of a shorter
        list) and how many were scored.

    Raises:
        ValueError: the scorer returned the wrong number of scores, or a non-finite one.
    """
    context = runtime.context
    dataset, scorer = context.dataset, context.scorer
    n_history = context.settings.n_history
    history = state.get("history") or []
    recent, older = history[-n_history:], history[:-n_history]
    summaries = state.get("summaries") or {}
    collaborative = state.get("similar_users") or []
    candidates = state.get("candidates") or []
    top_k = state.get("top_k") or context.settings.top_k
    shown = top_k + context.settings.overfetch  # more for filters after this node
    llm = getattr(scorer, "llm", None)
    ranker = context.ranker
    with traced(
        "recommend",
        model=ranker.name if ranker is not None else scorer.name,
        user_id=state["user_id"],
        history=recent,
        n_older=len(older),
        similar_users=[user["user_id"] for user in collaborative],
        n_candidates=len(candidates),
        top_k=top_k,
    ) as trace:
        preference = ""
        if context.preference is not None and older:
            older_items = [dataset.by_id(item_id) for item_id in older]
            preference = context.preference.preference(state["user_id"], older_items)
        history_keywords = [
            (dataset.by_id(item_id).title, summaries.get(item_id, {}).get("keywords", []))
            for item_id in recent
        ]
        items = [dataset.by_id(item_id) for item_id in candidates]
        if ranker is not None:
            scores = ranker_scores(ranker, dataset, state["user_id"], history, items)
        else:
            prefix = build_prefix(llm, history_keywords, preference, collaborative)
            scores = scorer.score(prefix, [candidate_suffix(llm, item) for item in items])
        if len(scores) != len(items) or not all(math.isfinite(s) for s in scores):
            name = ranker.name if ranker is not None else scorer.name
            raise ValueError(
                f"scorer `{name}` returned {len(scores)} scores for {len(items)} "
                "candidates, or a non-finite score; it must return one finite float each"
            )
        order = sorted(range(len(items)), key=lambda i: -scores[i])  # stable
        recommendations = [
            Recommendation(
                item_id=items[i].item_id,
                title=items[i].title,
                score=float(scores[i]),
                evidence=evidence_for(
                    items[i],
                    summaries.get(items[i].item_id, {}).get("keywords"),
                    history_keywords,
                    collaborative,
                ),
            )
            for i in order[:shown]
        ]
        trace["outputs"] = {
            "preference": preference,
            # the best TRACED scores (all of them for a short list): a whole-catalogue run
            # would otherwise store and hash one score per item at every request
            "scores": {items[i].item_id: float(scores[i]) for i in order[:TRACED]},
            "n_scored": len(items),
            "ranked": [items[i].item_id for i in order[:shown]],
        }
    return {
        "preference": preference,
        "recommendations": recommendations,
        "trace": [trace["record"]],
    }
