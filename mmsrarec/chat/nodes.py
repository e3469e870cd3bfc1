"""Chat nodes: understand -> clarify (a question) | rank (the recommendation graph) -> reply.

Each is `fn(state, runtime) -> dict` over `ChatState`, with a `ChatContext` as
`runtime.context`, and appends one trace record; `rank` also appends the records of the
recommendation graph run it made, so one trace shows the whole path of a turn.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime

from mmsrarec.chat.context import ChatContext
from mmsrarec.chat.parse import avoided, parse_request, resolve_choice
from mmsrarec.chat.state import ChatMessage, ChatState, Match
from mmsrarec.data import Item
from mmsrarec.trace import traced

ASK_FOR_TASTE = (
    "Tell me a film or two you liked, or what you are in the mood for "
    "(for example: 'loved Alien and Star Wars, want something tense but not gory')."
)
CHAT_USER = "chat-user"  # user id given to the recommendation graph (never a dataset user)


def _item(ctx: ChatContext, item_id: str) -> Item:
    return ctx.dataset.item(ctx.dataset.index_of(item_id))


def understand(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Map the message to catalog items, or decide to ask.

    Returns:
        The turn's `liked`, `matches`, `avoid`, `question` (+ `options`, `pending`), the
        user's message in `messages`, reset per-turn outputs and a `trace` record.
    """
    ctx = runtime.context
    message = state["message"].strip()
    turn = state.get("turn", 0) + 1
    liked = list(state.get("liked") or [])
    offered = [_item(ctx, item_id) for item_id in state.get("options") or []]
    with traced("understand", turn=turn, message=message, liked_before=liked) as trace:
        chosen = resolve_choice(message, offered) if offered else None
        text = state.get("pending", "") if chosen else message
        if chosen is not None:
            liked.append(chosen.item_id)
        request = parse_request(text, ctx.titles)
        question, options = "", []
        for mention in request.mentions:
            if chosen is not None and chosen.item_id in mention.item_ids:
                continue  # the question this message answered
            if len(mention.item_ids) == 1:
                liked.append(mention.item_ids[0])
            elif not question:
                options = list(mention.item_ids[:5])
                listed = "; ".join(
                    f"{n}. {_item(ctx, i).title}" for n, i in enumerate(options, start=1)
                )
                question = (
                    f"Which '{mention.phrase}' do you mean: {listed}? "
                    "Answer with the number or the year."
                )
        liked = list(dict.fromkeys(liked))
        matches: list[Match] = []
        if request.description:
            found = ctx.catalog.search(request.description, ctx.settings.n_matches)
            matches = [m for m in found if m["similarity"] >= ctx.settings.min_similarity]
            if not matches and not liked and not question:
                question = (
                    f"I found nothing in the catalog close to '{request.description}'. "
                    + ASK_FOR_TASTE
                )
        if not question and not liked and not matches:
            question = ASK_FOR_TASTE
        trace["outputs"] = {
            "chosen": chosen.item_id if chosen else None,
            "mentions": {m.phrase: list(m.item_ids) for m in request.mentions},
            "liked": liked,
            "description": request.description,
            "matches": matches,
            "avoid": request.avoid,
            "question": question,
        }
    return {
        "turn": turn,
        "messages": [ChatMessage(role="user", text=message)],
        "liked": liked,
        "matches": matches,
        "avoid": request.avoid,
        "question": question,
        "options": options,
        "pending": text if options else "",
        "recommendations": [],
        "similar_users": [],
        "reply": "",
        "trace": [trace["record"]],
    }


def after_understand(state: ChatState) -> Literal["clarify", "rank"]:
    """Ask when `understand` left a question, else recommend."""
    return "clarify" if state.get("question") else "rank"


def clarify(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Answer with the question (the options wait in the state for the next turn)."""
    with traced("clarify", turn=state["turn"], options=state.get("options", [])) as trace:
        trace["outputs"] = {"reply": state["question"]}
    return {
        "reply": state["question"],
        "messages": [ChatMessage(role="assistant", text=state["question"])],
        "trace": [trace["record"]],
    }


def rank(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Pick candidates (item-kNN over the liked items plus the description's matches), drop
    what the user asked to avoid or has seen, and let the recommendation graph re-rank them.

    Returns:
        `recommendations`, `similar_users`, `shown` and the trace: this node's record followed
        by the recommendation graph's records.
    """
    ctx = runtime.context
    settings = ctx.settings
    matched = [m["item_id"] for m in state.get("matches") or []]
    history = list(state.get("liked") or []) or matched[:3]  # a description stands in
    exclude = set(history) | set(state.get("shown") or [])
    avoid = state.get("avoid") or []
    with traced("rank", turn=state["turn"], history=history, avoid=avoid) as trace:
        pool = [i for i in matched if i not in exclude]
        pool += ctx.candidates.top(history, settings.n_candidates * 2, exclude | set(pool))
        kept = [i for i in dict.fromkeys(pool) if not avoided(_item(ctx, i).text, avoid)]
        candidates = kept[: settings.n_candidates]
        output: dict[str, Any] = {"recommendations": [], "similar_users": [], "trace": []}
        if candidates:
            output = ctx.recommender.invoke(
                {
                    "user_id": CHAT_USER,
                    "history": history,
                    "candidates": candidates,
                    "top_k": settings.top_k,
                },
                context=ctx.graph,
            )
        trace["outputs"] = {
            "candidates": candidates,
            "dropped_as_avoided": [i for i in dict.fromkeys(pool) if i not in kept],
            "ranked": [r["item_id"] for r in output["recommendations"]],
        }
    recommendations = output["recommendations"]
    return {
        "recommendations": recommendations,
        "similar_users": output["similar_users"],
        "shown": [*state.get("shown", []), *(r["item_id"] for r in recommendations)],
        "trace": [trace["record"], *output["trace"]],
    }


def reply(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Write the answer: what was understood, then each pick with its keyword evidence."""
    ctx = runtime.context
    liked = [_item(ctx, i).title for i in state.get("liked") or []]
    matches = state.get("matches") or []
    recommendations = state.get("recommendations") or []
    with traced("reply", turn=state["turn"], n_recommendations=len(recommendations)) as trace:
        lines = []
        if liked:
            lines.append(f"Since you liked {', '.join(liked[-5:])}")
        if matches:
            lines.append(f"closest to your description: {', '.join(m['title'] for m in matches)}")
        if state.get("avoid"):
            lines.append(f"avoiding: {', '.join(state['avoid'])}")
        header = ("; ".join(lines) + ".") if lines else ""
        if recommendations:
            picks = [
                f"{n}. {r['title']} ({r['score']:.2f}): {r['evidence']}"
                for n, r in enumerate(recommendations, start=1)
            ]
            text = "\n".join([header, "You might enjoy:", *picks]).strip()
        else:
            text = f"{header}\nI have nothing new to suggest: name another film you liked.".strip()
        trace["outputs"] = {"reply": text}
    return {
        "reply": text,
        "messages": [ChatMessage(role="assistant", text=text)],
        "trace": [trace["record"]],
    }
