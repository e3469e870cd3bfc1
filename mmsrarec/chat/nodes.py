"""Conversation nodes: understand -> clarify | (the tools in `tools.py`) -> reply.

Each is `fn(state, runtime) -> dict` over `ChatState`, with a `ChatContext` as
`runtime.context`, and appends one trace record.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime

from mmsrarec.chat.asks import Asks, apply_asks, profile_text, read_asks, why_text
from mmsrarec.chat.context import ChatContext
from mmsrarec.chat.intent import Intent, intent_line, update_intent
from mmsrarec.chat.parse import Mention, resolve_choice
from mmsrarec.chat.replies import ASK_FOR_TASTE, HELP, option_labels, reply_text, same_film
from mmsrarec.chat.rules import Parsed, parse_message
from mmsrarec.chat.sqlcatalog import Conditions
from mmsrarec.chat.state import ChatMessage, ChatState
from mmsrarec.trace import traced

KINDS = ("liked", "disliked", "seen")


def resolve_mentions(
    ctx: ChatContext, parsed: Parsed, chosen: str | None
) -> tuple[dict[str, list[str]], list[str]]:
    """Item ids per kind (`liked`, `disliked`, `seen`) and, when a title means several
    different films, the options to ask about (else [])."""
    resolved: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for kind in KINDS:
        mention: Mention
        for mention in getattr(parsed, kind):
            ids = list(mention.item_ids)
            if chosen in ids:
                ids = [chosen]
            elif len(ids) > 1 and not same_film([ctx.facts(i) for i in ids]):
                return resolved, ids[:5]
            resolved[kind] += ids  # one id, or one film listed several times
    return resolved, []


def understand(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Read the message (rules, `rules.py`), update the intent, or decide to ask.

    Returns:
        `intent` and the turn's `conditions`, `question` (+ `options`, `pending`), the user's
        message in `messages`, reset per-turn outputs and a `trace` record.
    """
    ctx = runtime.context
    message = state["message"].strip()
    turn = state.get("turn", 0) + 1
    before = state.get("intent") or Intent()
    offered = state.get("options") or []
    with traced("understand", turn=turn, message=message, intent=before.model_dump()) as trace:
        picked = resolve_choice(
            message, [ctx.dataset.item(ctx.dataset.index_of(i)) for i in offered]
        )
        chosen = picked.item_id if picked and offered else None
        text = state.get("pending", "") if chosen else message
        parsed = parse_message(text, ctx.titles, ctx.db.genres, ctx.vocabulary)
        asks = read_asks(text)
        about = asks.why is not None or asks.profile
        resolved, options = resolve_mentions(ctx, parsed, chosen)
        intent, question = before, ""
        if options:
            labels = option_labels([ctx.facts(i) for i in options])
            listed = "; ".join(f"{n}. {label}" for n, label in enumerate(labels, start=1))
            phrase = next(
                m.phrase for k in KINDS for m in getattr(parsed, k) if options[0] in m.item_ids
            )
            question = (
                f"Which '{phrase}' do you mean: {listed}? Answer with the number or the year."
            )
        elif about:  # a question about the recommender: the intent stays
            intent = apply_asks(before, asks, ctx.settings.less_mainstream)
            question = _answer(ctx, state, intent, asks)
        else:
            intent = update_intent(before, parsed, resolved, _year_of(ctx), ctx.db.span)
            intent = apply_asks(intent, asks, ctx.settings.less_mainstream)
            if not parsed.understood() and not asks.changes_intent():
                seen = f"I did not catch a request in '{message[:80]}'. " if turn > 1 else ""
                question = seen + (HELP if before.has_request() else ASK_FOR_TASTE)
            elif not intent.has_request():
                start = "Starting over. " if "startover" in parsed.refine else "Noted. "
                question = start + ASK_FOR_TASTE
        line = intent_line(intent, ctx.title)
        trace["outputs"] = {
            "chosen": chosen,
            "parsed": {k: v for k, v in vars(parsed).items() if k not in KINDS and v},
            "titles": resolved,
            "intent": intent.model_dump(),
            "intent_line": line,
            "unknown_words": parsed.unknown,
            "asks": {k: v for k, v in vars(asks).items() if v not in (None, False, [])},
            "question": question,
        }
    return {
        "turn": turn,
        "messages": [ChatMessage(role="user", text=message)],
        "intent": intent,
        "liked": intent.liked,
        "intent_line": line,
        "conditions": Conditions(
            genres=tuple(intent.genres),
            avoid_genres=tuple(intent.avoid_genres),
            year_min=intent.year_min,
            year_max=intent.year_max,
        ),
        "relaxed": [],
        "pool": [],
        "matches": [],
        "question": question,
        "options": options,
        "pending": text if options else "",
        "ranked": [],
        # A question about the recommender keeps the last picks (for the next "why").
        "recommendations": (state.get("recommendations") or []) if about else [],
        "similar_users": [],
        "reply": "",
        "trace": [trace["record"]],
    }


def _answer(ctx: ChatContext, state: ChatState, intent: Intent, asks: Asks) -> str:
    """The answer to "why" (the last picks' evidence) or "what do I like" (the profile)."""
    if asks.why is not None:
        return why_text(state.get("recommendations") or [], asks.why, ctx.title)
    motivations, _ = ctx.graph.motivations.corrected(intent.liked, intent.not_into)
    return profile_text(motivations, intent.not_into)


def _year_of(ctx: ChatContext):
    return lambda item_id: ctx.facts(item_id).year


def after_understand(state: ChatState) -> Literal["clarify", "hard_filter"]:
    """Ask when `understand` left a question, else run the tools."""
    return "clarify" if state.get("question") else "hard_filter"


def clarify(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Answer with the question (the options wait in the state for the next turn)."""
    with traced("clarify", turn=state["turn"], options=state.get("options", [])) as trace:
        trace["outputs"] = {"reply": state["question"]}
    return {
        "reply": state["question"],
        "messages": [ChatMessage(role="assistant", text=state["question"])],
        "trace": [trace["record"]],
    }


def reply(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Write the answer: the intent line, what was relaxed, each pick once with its reason."""
    recommendations = state.get("recommendations") or []
    with traced("reply", turn=state["turn"], n_recommendations=len(recommendations)) as trace:
        text = reply_text(state["intent_line"], state.get("relaxed") or [], recommendations)
        trace["outputs"] = {"reply": text}
    return {
        "reply": text,
        "messages": [ChatMessage(role="assistant", text=text)],
        "trace": [trace["record"]],
    }
