"""The chat's tools over a candidate set, each a traced node (after RecAI's InteRecAgent):

    hard_filter (SQL over the catalog) <-> relax (drop one hard condition while too few pass)
      -> soft_search (Chroma: the soft wishes, inside the filtered items)
      -> rank (the recommendation graph with the liked titles as history; popularity for a
               user who named none) -> final_filter (never liked, disliked, seen or shown)

Ranking fuses, by reciprocal rank (`fuse`), the orders that apply: the recommendation graph's
(when the user liked something), the soft-wish similarity (when there are wishes) and
popularity (when nothing was liked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langgraph.runtime import Runtime

from mmsrarec.chat.context import ChatContext
from mmsrarec.chat.intent import Intent
from mmsrarec.chat.parse import avoided
from mmsrarec.chat.replies import reason
from mmsrarec.chat.sqlcatalog import relax as relax_rule
from mmsrarec.chat.state import ChatState
from mmsrarec.nodes.critic import critic_rule
from mmsrarec.trace import traced
from mmsrarec.types import Evidence, Recommendation

CHAT_USER = "chat-user"  # user id given to the recommendation graph (never a dataset user)
RRF_K = 10  # reciprocal-rank constant: small, so that first places count
# An item the recommendation graph did not rank has no cited history and no supporting words.
NO_EVIDENCE = Evidence(contributions={}, cited_history=[], cited_drops=[], supporting_keywords=[],
                       supporting_users=[])  # fmt: skip


def fuse(orders: Mapping[str, Sequence[str]]) -> list[tuple[str, float, dict[str, float]]]:
    """Reciprocal-rank fusion: `score(i) = sum over orders of 1 / (RRF_K + rank(i))`, rank
    1-based; an item missing from an order gets nothing from it. Best first, ties keep the
    first order's order; with each item's parts of its score by order name."""
    parts: dict[str, dict[str, float]] = {}
    for name, order in orders.items():
        for rank, item_id in enumerate(order, start=1):
            parts.setdefault(item_id, {})[name] = 1.0 / (RRF_K + rank)
    scored = [(item_id, sum(p.values()), p) for item_id, p in parts.items()]
    return sorted(scored, key=lambda row: -row[1])


def same_title_ids(ctx: ChatContext, item_ids: Sequence[str]) -> set[str]:
    """Every item sharing a title with one of `item_ids` (duplicates in the catalog)."""
    titles = {ctx.title(i) for i in item_ids}
    return {i for title in titles for i in ctx.titles.ids_of_title(title)}


def banned(ctx: ChatContext, intent: Intent) -> set[str]:
    return same_title_ids(ctx, sorted(intent.banned()))


def hard_filter(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """The items meeting this turn's hard conditions (an SQL query), minus banned ones; items
    shown before come after the others."""
    ctx = runtime.context
    conditions = state["conditions"]
    with traced("hard_filter", turn=state["turn"], conditions=conditions.model_dump()) as trace:
        found, sql = ctx.db.query(conditions)
        excluded = banned(ctx, state["intent"])
        shown = same_title_ids(ctx, state["intent"].shown)
        fresh = [i for i in found if i not in excluded and i not in shown]
        pool = fresh + [i for i in found if i not in excluded and i in shown]
        trace["outputs"] = {"sql": sql, "n_matching": len(found), "n_pool": len(pool)}
    return {"pool": pool, "trace": [trace["record"]]}


def after_filter(
    state: ChatState, runtime: Runtime[ChatContext]
) -> Literal["relax", "soft_search"]:
    """Relax while fewer than `min_pool` items pass and a condition can still be dropped."""
    few = len(state.get("pool") or []) < runtime.context.settings.min_pool
    return "relax" if few and relax_rule(state["conditions"]) is not None else "soft_search"


def relax(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Drop one hard condition (`sqlcatalog.relax`) and say which."""
    with traced("relax", turn=state["turn"], n_pool=len(state.get("pool") or [])) as trace:
        relaxed = relax_rule(state["conditions"])
        assert relaxed is not None  # `after_filter` routes here only when one can be dropped
        conditions, dropped = relaxed
        trace["outputs"] = {"dropped": dropped, "conditions": conditions.model_dump()}
    return {
        "conditions": conditions,
        "relaxed": [*(state.get("relaxed") or []), dropped],
        "trace": [trace["record"]],
    }


def soft_search(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """The soft wishes matched by sentence embedding (the Chroma catalog index) inside the
    filtered items; none without wishes."""
    ctx = runtime.context
    wishes = state["intent"].wishes
    query = " ".join(wishes)
    with traced("soft_search", model=ctx.catalog.name, turn=state["turn"], query=query) as trace:
        matches = []
        if wishes and state["pool"]:
            found = ctx.catalog.search(query, ctx.settings.n_matches, within=state["pool"])
            matches = [m for m in found if m["similarity"] >= ctx.settings.min_similarity]
        trace["outputs"] = {"matches": matches}
    return {"matches": matches, "trace": [trace["record"]]}


def rank(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Order the candidates (soft matches, item-kNN of the liked titles inside the pool, then
    the most popular of the pool) and give each a one-line reason.

    Returns:
        `ranked`, `similar_users` and the trace: this node's record followed by the
        recommendation graph's records (when it ran).
    """
    ctx = runtime.context
    settings = ctx.settings
    intent: Intent = state["intent"]
    pool = state.get("pool") or []
    matches = state.get("matches") or []
    liked = list(intent.liked)
    soft_order = [m["item_id"] for m in matches]
    with traced("rank", turn=state["turn"], liked=liked, n_pool=len(pool)) as trace:
        # The liked titles behind a motivation the user dropped no longer speak for them.
        motivations, history = ctx.graph.motivations.corrected(liked, intent.not_into)
        near = (
            ctx.candidates.top(history, settings.n_candidates, set(), within=set(pool))
            if history
            else []
        )  # noqa: E501
        candidates = list(dict.fromkeys([*soft_order, *near, *pool]))[: settings.n_candidates]
        output: dict[str, Any] = {"recommendations": [], "similar_users": [], "trace": []}
        orders: dict[str, list[str]] = {}
        if history and candidates:
            request = {"user_id": CHAT_USER, "history": history, "candidates": candidates,
                       "top_k": len(candidates)}  # fmt: skip
            if intent.debias is not None:
                request["debias"] = intent.debias
            output = ctx.recommender.invoke(request, context=ctx.graph)
            orders["recommendation graph"] = [r["item_id"] for r in output["recommendations"]]
        if soft_order:
            orders["soft wishes"] = [i for i in soft_order if i in candidates]
        if not history:
            orders["popularity"] = candidates  # the pool's order: most popular first
        if intent.order:  # "the older the better"
            years = {i: ctx.facts(i).year or 0 for i in candidates}
            newest = intent.order != "oldest"
            orders["year"] = sorted(candidates, key=lambda i: years[i], reverse=newest)
        chosen = {u["next_item_id"] for u in output["similar_users"]}
        soft = {m["item_id"]: (" ".join(intent.wishes), m["similarity"]) for m in matches}
        wanted_genres = intent.all_genres()
        liked_titles = [ctx.title(i) for i in history]
        graph = {r["item_id"]: r for r in output["recommendations"]}
        ranked = [
            Recommendation(
                item_id=item_id, title=ctx.title(item_id), score=score,
                evidence=reason(ctx.facts(item_id), wanted_genres, soft, item_id in chosen,
                                liked_titles),
                **_evidence(graph.get(item_id), parts),
            )
            for item_id, score, parts in fuse(orders)
        ]  # fmt: skip
        trace["outputs"] = {
            "candidates": candidates,
            "orders": list(orders),
            "history": history,
            "motivations": motivations,
            "debias": intent.debias,
            "ranked": [r["item_id"] for r in ranked],
            "critic": critic_rule(ctx.graph),
            "retriever": _retriever_name(ctx),
        }
    return {
        "ranked": ranked,
        "similar_users": output["similar_users"],
        "trace": [trace["record"], *output["trace"]],
    }


def _evidence(ranked: Recommendation | None, parts: dict[str, float]) -> Evidence:
    """A chat pick's evidence: its score's parts (one per order fused), and the recommendation
    graph's cited history and supporting words where the graph ranked it."""
    source = ranked or NO_EVIDENCE
    return Evidence(contributions=parts, cited_history=source["cited_history"],
                    cited_drops=source["cited_drops"],
                    supporting_keywords=source["supporting_keywords"],
                    supporting_users=source["supporting_users"])  # fmt: skip


def final_filter(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Keep the first `top_k` ranked items that are not liked, disliked, seen or of an
    excluded series (nor a duplicate of one), not of an avoided genre and without an avoided
    word, items shown before only when too few others are left; remember them as shown."""
    ctx = runtime.context
    intent: Intent = state["intent"]
    excluded = banned(ctx, intent)
    with traced(
        "final_filter", turn=state["turn"], n_ranked=len(state.get("ranked") or [])
    ) as trace:  # noqa: E501
        kept, dropped, titles = [], {}, set()
        shown = same_title_ids(ctx, intent.shown)
        ranked = state.get("ranked") or []
        # Items shown before only when too few others are left (a narrowed request).
        for rec in [r for r in ranked if r["item_id"] not in shown] + [
            r for r in ranked if r["item_id"] in shown
        ]:
            facts = ctx.facts(rec["item_id"])
            item = ctx.dataset.item(ctx.dataset.index_of(rec["item_id"]))
            why = (
                "liked, disliked, seen or of an excluded series" if rec["item_id"] in excluded
                else "same title as a pick" if facts.title in titles
                else "avoided genre" if set(facts.genres) & set(intent.all_avoided())
                else "avoided word" if avoided(item.text, intent.avoid_wishes)
                else ""
            )  # fmt: skip
            if why:
                dropped[rec["item_id"]] = why
            elif len(kept) < ctx.settings.top_k:
                kept.append(rec)
                titles.add(facts.title)
        trace["outputs"] = {"kept": [r["item_id"] for r in kept], "dropped": dropped}
    picks = [r["item_id"] for r in kept]
    updated = intent.model_copy(update={"shown": [*intent.shown, *picks], "last_shown": picks})
    return {"recommendations": kept, "intent": updated, "trace": [trace["record"]]}


def _retriever_name(ctx: ChatContext) -> str | None:
    retriever = ctx.graph.retriever
    if retriever is None:
        return None
    if hasattr(retriever, "sasrec"):  # `CollaborativeRetriever`: SASRec states in Chroma
        return "SASRec user states (Chroma)"
    return getattr(retriever, "name", None) or type(retriever).__name__
