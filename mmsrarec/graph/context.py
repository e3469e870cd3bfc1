"""Run context of the recommendation graph: the parts each node calls, and its settings.

LangGraph passes this to every node as `runtime.context` (`graph.invoke(..., context=ctx)`);
it is never checkpointed. Each part is a small protocol, so a developer can swap in their
own summarizer, critic, retriever or scorer without touching the nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmsrarec.data import Dataset, Item
from mmsrarec.graph.state import SimilarUser
from mmsrarec.recommenders.base import Recommender


class Judgement(TypedDict):
    """The critic's verdict on one draft summary."""

    total: float  # weighted, normalised reward; higher is better
    components: dict[str, float]  # raw r_info, r_recon, r_len
    feedback: str  # what to change, for the summarizer's next round ("" when fine)


class Summarizer(Protocol):
    """Turns items into keyword lists."""

    name: str  # model or method name, recorded in traces and cache keys

    def summarize(self, items: Sequence[Item], feedback: Mapping[str, str]) -> dict[str, list[str]]:
        """Keywords per item id. `feedback[item_id]` (may be missing) is the critic's
        advice from the previous round."""
        ...


class Critic(Protocol):
    """Scores draft summaries."""

    def judge(self, items: Sequence[Item], drafts: Mapping[str, list[str]]) -> dict[str, Judgement]:
        """A judgement per item id in `drafts`."""
        ...


class KeywordStore(Protocol):
    """Persistent keywords per item (keyed by item, content, model and prompt version)."""

    def get_many(self, items: Sequence[Item]) -> dict[str, list[str]]:
        """Stored keywords for the items that have them (misses are left out)."""
        ...

    def put(self, item: Item, keywords: list[str], reward: float | None) -> None:
        """Store (atomically) the final keywords of one item."""
        ...


class Retriever(Protocol):
    """Finds training users whose history resembles a user's."""

    def similar_users(self, user_id: str, history: Sequence[str], k: int) -> list[SimilarUser]:
        """The `k` most similar training users (never `user_id`), with the item each chose
        next. `history` holds raw item ids, chronological. `keywords` may be left empty:
        the retrieval node fills them from the keyword store."""
        ...


class CandidateScorer(Protocol):
    """Scores candidates that share one prompt prefix."""

    name: str

    def score(self, prefix: str, suffixes: Sequence[str]) -> list[float]:
        """`p(yes) / (p(yes) + p(no))` for each `prefix + suffix` prompt."""
        ...


class PreferenceSummarizer(Protocol):
    """Summarises the older part of a history (before the last n items) in a sentence."""

    def preference(self, user_id: str, items: Sequence[Item]) -> str: ...


class GraphSettings(BaseModel):
    """Settings of one graph run (METHOD.md defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_history: int = Field(
        5, ge=1, le=50, description="History items whose keywords enter the prompt."
    )
    k_similar: int = Field(
        3, ge=0, le=50, description="Similar training users to retrieve (0 = off)."
    )
    max_rounds: int = Field(3, ge=1, le=10, description="Summarizer rounds per item at most.")
    threshold: float = Field(0.6, description="Critic total at or above which a summary is kept.")
    top_k: int = Field(10, ge=1, description="Recommendations returned by default.")
    stage: str = Field("test", pattern="^(valid|test)$", description="Which frozen split to serve.")
    scorer: str = Field(
        "mmsrarec",
        description="How the recommend node scores: a catalog recommender (`mmsrarec`, the "
        "fused system; `llm-recommender`, the LLM alone; any evaluation method) scoring every "
        "item in one pass per user, or `yes-no`, the paper's p(yes) prompt per candidate.",
    )

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, value: str) -> str:
        from mmsrarec.evaluation.methods import CATALOG_SCORERS

        if value != "yes-no" and value not in CATALOG_SCORERS:
            raise ValueError(f"unknown scorer; known: yes-no, {', '.join(CATALOG_SCORERS)}")
        return value


@dataclass
class GraphContext:
    """What the nodes need; built once by the caller (see `mmsrarec.graph.build_context`)."""

    dataset: Dataset
    summarizer: Summarizer
    critic: Critic | None
    keywords: KeywordStore
    retriever: Retriever | None
    scorer: CandidateScorer
    preference: PreferenceSummarizer | None = None
    settings: GraphSettings = field(default_factory=GraphSettings)
    ranker: Recommender | None = None  # fitted; when set, it scores instead of `scorer`
