"""Critic node and the loop's router: keep the best draft per item, send weak ones back.

Per drafted item the critic's total decides: at or above `settings.threshold`, or after
`settings.max_rounds` rounds, the best-scoring draft of all rounds is final and goes to the
keyword store; otherwise the item is redrafted with the critic's feedback. Without a critic
every draft is final as it is (reward None).
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime

from mmsrarec.nodes.context import GraphContext
from mmsrarec.nodes.state import ItemSummary, RecommendationState
from mmsrarec.summarization import LLMSummarizer
from mmsrarec.trace import traced
from mmsrarec.types import Judgement


def critique(state: RecommendationState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Judge this round's drafts.

    Returns:
        `summaries` (best draft so far per judged item), `to_summarize` and `feedback` (items
        to redraft and what to change), and a `trace` record with the scores.
    """
    ctx = runtime.context
    settings = ctx.settings
    drafts = state.get("drafts") or {}
    completed = state.get("critic_round", 0)
    previous = state.get("summaries") or {}
    source = "llm" if isinstance(ctx.summarizer, LLMSummarizer) else ctx.summarizer.name
    critic = ctx.critic
    items = {item_id: ctx.dataset.by_id(item_id) for item_id in drafts}
    model = None if critic is None else getattr(critic, "name", type(critic).__name__)
    with traced("critique", model=model, round=completed, items=list(drafts)) as trace:
        judgements: dict[str, Judgement] = {}
        if critic is not None and drafts:
            judgements = critic.judge(list(items.values()), drafts)
        summaries: dict[str, ItemSummary] = {}
        redo: list[str] = []
        feedback: dict[str, str] = {}
        for item_id, keywords in drafts.items():
            judgement = judgements.get(item_id)
            best = _better(
                previous.get(item_id),
                ItemSummary(
                    item_id=item_id,
                    keywords=list(keywords),
                    reward=None if judgement is None else judgement["total"],
                    components={} if judgement is None else dict(judgement["components"]),
                    rounds=completed,
                    source=source,
                ),
            )
            best = ItemSummary(**{**best, "rounds": completed})  # rounds spent on the item
            summaries[item_id] = best
            weak = best["reward"] is not None and best["reward"] < settings.threshold
            if weak and completed < settings.max_rounds:
                redo.append(item_id)
                feedback[item_id] = judgement["feedback"] if judgement else ""
            else:
                ctx.keywords.put(items[item_id], best["keywords"], best["reward"])
        trace["outputs"] = {
            "scores": {
                item_id: {
                    "total": j["total"],
                    "components": j["components"],
                    "feedback": j["feedback"],
                }
                for item_id, j in judgements.items()
            },
            "kept": {item_id: s["keywords"] for item_id, s in summaries.items()},
            "to_summarize": redo,
            "rule": critic_rule(ctx),
        }
    return {
        "summaries": summaries,
        "to_summarize": redo,
        "feedback": feedback,
        "trace": [trace["record"]],
    }


def critic_rule(ctx: GraphContext) -> dict[str, Any] | None:
    """The rule that decided this round: the critic's formula and weights (its `describe`,
    e.g. `RewardCritic.describe` from `critic.weighted_total`'s terms) and the threshold;
    None without a critic or for a critic that does not describe itself."""
    describe = getattr(ctx.critic, "describe", None)
    if describe is None:
        return None
    return {**describe(), "threshold": ctx.settings.threshold}


def after_critique(
    state: RecommendationState, runtime: Runtime[GraphContext]
) -> Literal["summarize", "retrieve"]:
    """Back to the summarizer while items wait for another round, else on to retrieval."""
    waiting = bool(state.get("to_summarize"))
    rounds_left = state.get("critic_round", 0) < runtime.context.settings.max_rounds
    return "summarize" if waiting and rounds_left else "retrieve"


def _better(old: ItemSummary | None, new: ItemSummary) -> ItemSummary:
    """The higher-reward summary; the newer one on ties or when either is unjudged."""
    if old is None or old["reward"] is None or new["reward"] is None:
        return new
    return old if old["reward"] > new["reward"] else new
