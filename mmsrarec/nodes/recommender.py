"""Last node: score every candidate, rank, explain.

With a catalog ranker in the context (the default: the fused LLM recommender), one forward
per user scores every item and the candidates' scores are read from it; a debias > 0 (the
state's `debias`, else `settings.debias`) ranks through `Debiased` (less popular items
first, see `recommenders.debias`). Otherwise (the paper's yes/no variant) the prompt holds
the keywords of the user's last n items, a sentence on the older history (when a preference
summarizer is configured) and the collaborative keywords; each candidate adds only its own
text. All candidates go to the scorer in one call, so a scorer that reuses the prefix
(`SharedPrefixScorer`) encodes it once per user.

Each recommendation's evidence is built here, once (`scoring.evidence.build_evidence`): the
ranker's parts of its score, the history items whose removal lowers it most (leave-one-out
over the last `evidence_window` items (the state's, else the settings') in batched re-scoring,
`recommenders.explain`), then the words that support it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from mmsrarec.data import Dataset, Item
from mmsrarec.nodes.context import GraphContext
from mmsrarec.nodes.state import RecommendationState
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.recommenders.debias import Debiased
from mmsrarec.recommenders.explain import leave_one_out
from mmsrarec.scoring.evidence import build_evidence, evidence_line, text_keywords
from mmsrarec.scoring.prompts import build_prefix, candidate_suffix
from mmsrarec.trace import traced
from mmsrarec.types import Evidence, Recommendation, SimilarUser

TRACED = 100  # candidates whose score the trace keeps (the best ones)


def ranker_parts(
    ranker: Recommender, dataset: Dataset, user_id: str, history: list[str], items: list[Item]
) -> dict[str, np.ndarray]:
    """The ranker's scores of `items` for this history in parts (`Recommender.contributions`:
    they sum to the score), from one catalog pass."""
    query = Query(
        user_id,
        tuple(dataset.index_of(item_id) for item_id in history),
        tuple(dataset.index_of(item.item_id) for item in items),
    )
    return ranker.contributions([query])[0]


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
    debias = state.get("debias")
    debias = context.settings.debias if debias is None else debias
    if ranker is not None and debias != 0:  # a negative one is refused by `Debiased`
        ranker = Debiased(ranker, debias, context.log_popularity)
    window = state.get("evidence_window")
    window = context.settings.evidence_window if window is None else window
    with traced(
        "recommend",
        model=ranker.name if ranker is not None else scorer.name,
        user_id=state["user_id"],
        history=recent,
        n_older=len(older),
        similar_users=[user["user_id"] for user in collaborative],
        n_candidates=len(candidates),
        top_k=top_k,
        debias=debias if ranker is not None else None,
        evidence_window=window if ranker is not None else None,
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
        parts: dict[str, np.ndarray] = {}
        if ranker is not None:
            parts = ranker_parts(ranker, dataset, state["user_id"], history, items)
            scores = [float(s) for s in np.sum(list(parts.values()), axis=0)] if items else []
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
        top = [items[i] for i in order[:shown]]
        started = time.perf_counter()
        contributions = [
            {name: float(v[i]) for name, v in parts.items()} if parts else
            {scorer.name: scores[i]} for i in order[:shown]
        ]  # fmt: skip
        explained = explain(context, ranker, state["user_id"], history, top, contributions,
                            summaries, history_keywords, collaborative, window)  # fmt: skip
        recommendations = [
            Recommendation(item_id=item.item_id, title=item.title, score=float(scores[i]),
                           evidence=evidence_line(evidence, _title_of(dataset)), **evidence)
            for item, i, evidence in zip(top, order[:shown], explained, strict=True)
        ]  # fmt: skip
        trace["outputs"] = {
            "preference": preference,
            # the best TRACED scores (all of them for a short list): a whole-catalogue run
            # would otherwise store and hash one score per item at every request
            "scores": {items[i].item_id: float(scores[i]) for i in order[:TRACED]},
            "n_scored": len(items),
            "ranked": [item.item_id for item in top],
            "evidence": {item.item_id: e for item, e in zip(top, explained, strict=True)},
            "evidence_seconds": round(time.perf_counter() - started, 4),
        }
    return {
        "preference": preference,
        "recommendations": recommendations,
        "trace": [trace["record"]],
    }


def explain(
    context: GraphContext,
    ranker: Recommender | None,
    user_id: str,
    history: list[str],
    top: Sequence[Item],
    contributions: list[dict[str, float]],
    summaries: dict[str, Any],
    history_keywords: list[tuple[str, list[str]]],
    collaborative: list[SimilarUser],
    window: int,
) -> list[Evidence]:
    """The evidence of each recommended item (best first): `contributions`, its score's parts
    from the ranking pass; with a ranker, the cited history (leave-one-out) and the words
    matched against the cited items; with the yes/no scorer, the words of the prompt's items."""
    dataset = context.dataset
    cited: list[list[tuple[str, float]]] = [[] for _ in top]
    if ranker is not None and top:
        query = Query(user_id, tuple(dataset.index_of(i) for i in history),
                      tuple(dataset.index_of(item.item_id) for item in top))  # fmt: skip
        if query.history and window:
            counterfactual = leave_one_out(
                ranker, query, window, context.settings.evidence_shortlist
            )
            cited = [[(dataset.item(i).item_id, d) for i, d in counterfactual.cited(row)]
                     for row in range(len(top))]  # fmt: skip
    keywords = _keywords_of(context, {i for row in cited for i, _ in row})
    out = []
    for item, parts, why in zip(top, contributions, cited, strict=True):
        support = [(dataset.by_id(i).title, keywords[i]) for i, _ in why]
        if ranker is None:  # the prompt scorer read the recent items' keywords
            support = history_keywords
        out.append(build_evidence(item, summaries.get(item.item_id, {}).get("keywords"),
                                  support, collaborative, parts, why))  # fmt: skip
    return out


def _keywords_of(context: GraphContext, item_ids: set[str]) -> dict[str, list[str]]:
    """Stored keywords of the items, else the words of their own text."""
    if not item_ids:
        return {}
    items = [context.dataset.by_id(i) for i in sorted(item_ids)]
    stored = context.keywords.get_many(items)
    return {item.item_id: stored.get(item.item_id) or text_keywords(item) for item in items}


def _title_of(dataset: Dataset):
    return lambda item_id: dataset.by_id(item_id).title
