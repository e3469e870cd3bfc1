"""The typed state of the recommendation graph (what its nodes read and write).

Input: who to recommend for and which candidates. Internal: per-item keyword summaries
and the critic loop's bookkeeping, the collaborative keywords. Output: the ranked items
with evidence, and the trace. Every value is plain JSON-able data so the checkpointer can
store it; item references are raw item ids (strings).
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from typing_extensions import TypedDict  # pydantic builds JSON schemas from it on 3.11

from mmsrarec.trace import TraceRecord, chain_trace
from mmsrarec.types import Recommendation, SimilarUser


def merge_dict(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    """Reducer: later keys replace earlier ones, other keys stay."""
    return {**left, **right}


class ItemSummary(TypedDict):
    """Keywords for one item and how they were judged."""

    item_id: str
    keywords: list[str]
    reward: float | None  # the critic's weighted total; None when not judged (cache hit)
    components: dict[str, float]  # r_info, r_recon, r_len (raw values)
    rounds: int  # summarizer rounds it took
    source: str  # "cache", "llm" or the name of a custom summarizer


class RecommendationInput(TypedDict):
    """What a caller passes to `graph.invoke`."""

    user_id: str  # raw user id; may be new to the dataset when `history` is given
    history: list[str]  # raw item ids, chronological; [] = the user's history in the dataset
    candidates: list[str]  # raw item ids to rank; [] = the user's frozen sampled candidates
    top_k: int  # how many recommendations to return; 0 = the run settings' `top_k`
    debias: NotRequired[float | None]  # popularity-bias control; absent/None = `settings.debias`
    # history items tried for the cited history; absent/None = `settings.evidence_window`
    evidence_window: NotRequired[int | None]


class RecommendationState(RecommendationInput):
    """Everything the nodes read and write. Reducers: `summaries` merge by item id, `trace`
    appends hash-chained records; every other key is replaced by the last writer."""

    to_summarize: list[str]  # item ids the summarizer must (re)do in its next round
    drafts: dict[str, list[str]]  # the latest round's keywords per item, for the critic
    feedback: dict[str, str]  # critic feedback per item for the next round
    summaries: Annotated[dict[str, ItemSummary], merge_dict]  # best summary per item so far
    critic_round: int  # completed summarizer rounds
    similar_users: list[SimilarUser]  # collaborative retrieval result
    preference: str  # summary of the older history (before the last n items)
    recommendations: list[Recommendation]  # ranked, best first
    trace: Annotated[list[TraceRecord], chain_trace]  # one record per node run


class RecommendationOutput(TypedDict):
    """What `graph.invoke` returns."""

    user_id: str
    recommendations: list[Recommendation]
    similar_users: list[SimilarUser]
    trace: list[TraceRecord]
