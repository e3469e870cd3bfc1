"""Retrieval node: the user's most similar training users and their next items' keywords.

Reads `user_id` and `history`; writes `similar_users` and one `trace` record. Keywords of
the neighbours' next items come from the keyword store; items it lacks are summarised once
by the run's summarizer (without the critic loop) and stored, so later runs hit the store,
or, with a `backfill` in the context (a server), handed to it and shown without keywords.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from mmsrarec.data import Item
from mmsrarec.nodes.context import GraphContext
from mmsrarec.nodes.state import RecommendationState
from mmsrarec.trace import traced
from mmsrarec.types import SimilarUser


def retrieve(state: RecommendationState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Fill `similar_users` (empty when the context has no retriever or `k_similar` is 0)."""
    ctx = runtime.context
    k = ctx.settings.k_similar
    with traced("retrieve", user_id=state["user_id"], k=k) as record:
        if ctx.retriever is None or k == 0:
            reason = "no retriever in the context" if ctx.retriever is None else "k_similar = 0"
            record["outputs"] = {"enabled": False, "reason": reason}
            neighbours: list[SimilarUser] = []
        else:
            found = ctx.retriever.similar_users(state["user_id"], state["history"], k)
            items = _unique_items(ctx, [n["next_item_id"] for n in found])
            keywords, summarized = _keywords(ctx, items)
            if summarized:
                record["model"] = ctx.summarizer.name
            neighbours = [{**n, "keywords": keywords[n["next_item_id"]]} for n in found]
            record["outputs"] = {
                "enabled": True,
                "user_ids": [n["user_id"] for n in neighbours],
                "similarities": [n["similarity"] for n in neighbours],
                "next_items": [n["next_item_id"] for n in neighbours],
                "keywords": {item.item_id: keywords[item.item_id] for item in items},
                "summarized": summarized,
            }
    return {"similar_users": neighbours, "trace": [record["record"]]}


def _unique_items(ctx: GraphContext, item_ids: list[str]) -> list[Item]:
    unique = dict.fromkeys(item_ids)  # keeps first-seen order
    return [ctx.dataset.by_id(item_id) for item_id in unique]


def _keywords(ctx: GraphContext, items: list[Item]) -> tuple[dict[str, list[str]], list[str]]:
    """Keywords per item id (store first, summarizer for misses) and the ids summarised."""
    keywords = dict(ctx.keywords.get_many(items))
    missing = [item for item in items if item.item_id not in keywords]
    if missing and ctx.backfill is not None:  # a server: summarized later, not in this run
        ctx.backfill.request(missing)
        return {**{item.item_id: [] for item in missing}, **keywords}, []
    if missing:
        fresh = ctx.summarizer.summarize(missing, {})
        for item in missing:
            if item.item_id not in fresh:
                raise RuntimeError(
                    f"summarizer `{ctx.summarizer.name}` returned no keywords for item "
                    f"`{item.item_id}` it was asked for"
                )
            ctx.keywords.put(item, fresh[item.item_id], None)
            keywords[item.item_id] = fresh[item.item_id]
    return keywords, [item.item_id for item in missing]
