"""Conversation nodes: understand -> clarify | (the tools in `tools.py`) -> reply.

Each is `fn(state, runtime) -> dict` over `ChatState`, with a `ChatContext` as
`runtime.context`, and appends one trace record.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from langgraph.runtime import Runtime

from mmsrarec.chat.asks import Asks, apply_asks, profile_text, read_asks, why_text
from mmsrarec.chat.context import ChatContext
from mmsrarec.chat.intent import Intent, intent_line, update_intent
from mmsrarec.chat.llm_intent import merged, rules_unsure
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


def read_moods(ctx: ChatContext, parsed: Parsed) -> tuple[dict[str, str], dict[str, str]]:
    """Mood words read as genres (`moods.py`), wanted and avoided; none when the message
    names a genre (then its moods stay soft wishes)."""
    if ctx.moods is None or parsed.genres:
        return {}, {}
    wanted, avoided = parsed.mood_words()
    found = {m.word: m.genre for m in ctx.moods.genre_of([*wanted, *avoided])}
    return (
        {w: found[w] for w in wanted if w in found},
        {w: found[w] for w in avoided if w in found},
    )


def fallback_note(message: str, understood: bool, intent: Intent) -> str:
    """What the reply says before its picks when the message asked for nothing usable: what
    was understood, and where the picks come from (history or popular items)."""
    source = (
        "Meanwhile, picks from the titles you liked:"
        if intent.liked
        else "Meanwhile, popular picks:"
    )
    if not understood:
        heard = f"I did not catch a request in '{message[:80]}'. "
        return f"{heard}{HELP if intent.has_request() else ASK_FOR_TASTE} {source}"
    return f"Noted. {ASK_FOR_TASTE} {source}"


def conditions_of(ctx: ChatContext, intent: Intent) -> Conditions:
    """The hard conditions of `intent`; a request with liked titles and no genre takes items
    sharing a genre with them ("like Alien but not its sequels": from Alien's genres)."""
    liked_genres = [g for i in intent.liked for g in ctx.facts(i).genres]
    return Conditions(
        genres=tuple(intent.genres),
        mood_genres=tuple(intent.moods.items()),
        any_genres=tuple(dict.fromkeys(liked_genres)) if not intent.all_genres() else (),
        avoid_genres=tuple(intent.all_avoided()),
        year_min=intent.year_min,
        year_max=intent.year_max,
        avoid_years=tuple(intent.avoid_years),
    )


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
        parsed = parse_message(text, ctx.titles, ctx.db.genres, ctx.vocabulary, ctx.known_words)
        asks = read_asks(text)
        about = asks.why is not None or asks.profile
        resolved, options = resolve_mentions(ctx, parsed, chosen)
        moods = read_moods(ctx, parsed)
        reader = ctx.settings.intent_reader
        if ctx.intent_llm is not None and (
            reader == "llm" or rules_unsure(parsed, {*moods[0], *moods[1]})
        ):
            parsed = merged(parsed, ctx.intent_llm.read(text), replace=reader == "llm")
            moods = ({}, {}) if reader == "llm" else moods
        intent, question, note = before, "", ""
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
            intent = update_intent(
                before, parsed, resolved, _year_of(ctx), ctx.db.span, moods, ctx.series.of
            )
            intent = apply_asks(intent, asks, ctx.settings.less_mainstream)
            understood = parsed.understood() or any(moods) or asks.changes_intent()
            if not understood or not intent.has_request():
                note = fallback_note(message, understood, intent)
                if "startover" in parsed.refine:
                    note = "Starting over. " + note.removeprefix("Noted. ")
        line = intent_line(intent, ctx.title)
        trace["outputs"] = {
            "chosen": chosen,
            "parsed": {k: v for k, v in asdict(parsed).items() if k not in KINDS and v},
            "titles": resolved,
            "intent": intent.model_dump(),
            "intent_line": line,
            "unknown_words": parsed.unknown,
            "asks": {k: v for k, v in vars(asks).items() if v not in (None, False, [])},
            "moods": {"wanted": moods[0], "avoided": moods[1]},
            "question": question,
            "note": note,
        }
    return {
        "turn": turn,
        "messages": [ChatMessage(role="user", text=message)],
        "intent": intent,
        "liked": intent.liked,
        "intent_line": line,
        "conditions": conditions_of(ctx, intent),
        "note": note,
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
    """Ask when `understand` left a question (which film a title means), else run the tools
    (also when nothing was understood: the reply then says so and recommends from the
    history or popular items)."""
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
        text = reply_text(
            state["intent_line"],
            state.get("relaxed") or [],
            recommendations,
            state.get("note", ""),
        )
        trace["outputs"] = {"reply": text}
    return {
        "reply": text,
        "messages": [ChatMessage(role="assistant", text=text)],
        "trace": [trace["record"]],
    }
