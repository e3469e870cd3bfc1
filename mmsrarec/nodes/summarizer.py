"""Summarizer node: keywords for the user's last n history items, one round per visit.

Round 0 takes the last `settings.n_history` items of `history`; those already in the
keyword store become summaries at once (source "cache", never judged again) and the rest
are drafted, or, with a `backfill` in the context (a server), handed to it and left
without keywords in this run (`deferred` in the trace). Later rounds, sent back by the
critic, redraft `to_summarize` with the critic's `feedback`. The critic node decides what is kept.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from mmsrarec.nodes.context import GraphContext
from mmsrarec.nodes.state import ItemSummary, RecommendationState
from mmsrarec.trace import traced


def summarize(state: RecommendationState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Draft keywords for this round's items.

    Returns:
        `drafts` (this round's keywords per item id), `critic_round` (+1), `to_summarize`
        (the items drafted), `summaries` (cache hits, round 0 only) and a `trace` record.
    """
    ctx = runtime.context
    completed = state.get("critic_round", 0)
    hits: dict[str, ItemSummary] = {}
    deferred: list[str] = []
    if completed == 0:
        recent = list(dict.fromkeys(state["history"][-ctx.settings.n_history :]))
        items = [ctx.dataset.by_id(item_id) for item_id in recent]
        cached = ctx.keywords.get_many(items)
        hits = {
            item_id: ItemSummary(
                item_id=item_id,
                keywords=keywords,
                reward=None,
                components={},
                rounds=0,
                source="cache",
            )
            for item_id, keywords in cached.items()
        }
        todo = [item for item in items if item.item_id not in cached]
        feedback: dict[str, str] = {}
        if ctx.backfill is not None and todo:  # a server: summarized later, not in this run
            ctx.backfill.request(todo)
            deferred, todo = [item.item_id for item in todo], []
    else:
        todo = [ctx.dataset.by_id(item_id) for item_id in state.get("to_summarize", [])]
        feedback = dict(state.get("feedback") or {})
    ids = [item.item_id for item in todo]
    with traced(
        "summarize",
        model=ctx.summarizer.name,
        round=completed + 1,
        items=ids,
        cache_hits=sorted(hits),
        feedback={item_id: feedback[item_id] for item_id in ids if item_id in feedback},
        deferred=deferred,
    ) as trace:
        drafts = ctx.summarizer.summarize(todo, feedback) if todo else {}
        drafts = {item_id: list(drafts.get(item_id, [])) for item_id in ids}
        trace["outputs"] = {"keywords": drafts}
    update: dict[str, Any] = {
        "drafts": drafts,
        "critic_round": completed + 1,
        "to_summarize": ids,
        "trace": [trace["record"]],
    }
    if hits:
        update["summaries"] = hits
    return update
