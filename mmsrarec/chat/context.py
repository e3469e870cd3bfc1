"""Run context of the chat graph: the parts its nodes call, and its settings."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, ConfigDict, Field

from mmsrarec.chat.llm_intent import LLMIntentReader
from mmsrarec.chat.moods import MoodMap
from mmsrarec.chat.parse import SeriesIndex, TitleIndex
from mmsrarec.chat.replies import Facts
from mmsrarec.chat.sqlcatalog import CatalogDB
from mmsrarec.chat.state import Match
from mmsrarec.data import Dataset
from mmsrarec.nodes.context import GraphContext


class CatalogSearch(Protocol):
    """Finds catalog items that fit a description."""

    name: str  # the sentence encoder, recorded in traces

    def search(self, text: str, k: int, within: Sequence[str] | None = None) -> list[Match]:
        """The `k` items closest to `text`, best first (only items in `within` when given)."""
        ...


class CandidateSource(Protocol):
    """Proposes items to re-rank for a history (a cheap first stage before the LLM)."""

    def top(
        self,
        history: Sequence[str],
        n: int,
        exclude: Collection[str],
        within: Collection[str] | None = None,
    ) -> list[str]:
        """Up to `n` raw item ids, best first, none in `exclude`, all in `within` if given."""
        ...


# "Less mainstream": a debias strength that changes the lists visibly (`benchmarks/debias.py`,
# mmsrarec, test users): the tail's share of the top 10 0.20 -> 0.39, catalogue coverage
# 0.45 -> 0.66, NDCG@10 0.129 -> 0.114.
LESS_MAINSTREAM = 0.75


class ChatSettings(BaseModel):
    """Settings of the chat graph."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = Field(5, ge=1, le=50, description="Recommendations per answer.")
    n_candidates: int = Field(
        30, ge=1, le=500, description="Candidates the recommendation graph re-ranks per turn."
    )
    n_matches: int = Field(
        20, ge=1, le=200, description="Soft-wish matches kept from the hard-filtered items."
    )
    min_similarity: float = Field(
        0.3, description="Soft-wish matches below this similarity are ignored."
    )
    min_pool: int = Field(
        5, ge=1, description="Fewer items than this pass the hard filter: relax one condition."
    )
    max_message_chars: int = Field(2000, ge=1, description="Longest message accepted.")
    intent_reader: Literal["rules", "llm", "both"] = Field(
        "rules",
        description="Who reads genres and years: the rules; the packaged LLM by constrained "
        "JSON decoding (`llm_intent.py`); or the LLM only where the rules are unsure. The "
        "rules win on the measurement families (benchmarks/CONVERSATION.md).",
    )
    mood_similarity: float = Field(
        0.8,
        description="A mood word reads as a genre when its nearest genre descriptor is at "
        "least this similar (cosine, `moods.py`; dev moods 0.87-1.0, filler words below 0.75).",
    )
    mood_margin: float = Field(
        0.08,
        description="... and beats the second genre's best descriptor by this much.",
    )
    less_mainstream: float = Field(
        LESS_MAINSTREAM, ge=0.0, le=10.0,
        description="The ranker's popularity-bias control (`GraphSettings.debias`) after 'less "
        "mainstream' or 'hidden gems'.",
    )  # fmt: skip


@dataclass
class ChatContext:
    """What the chat nodes need; see `mmsrarec.chat.factory.build_chat_context`."""

    dataset: Dataset
    catalog: CatalogSearch
    candidates: CandidateSource
    recommender: CompiledStateGraph  # the recommendation graph (`build_graph()`)
    graph: GraphContext  # its context
    titles: TitleIndex
    db: CatalogDB  # the hard-condition filter (SQLite)
    vocabulary: frozenset[str]  # words that may be soft wishes (catalog text and keywords)
    settings: ChatSettings = field(default_factory=ChatSettings)
    series: SeriesIndex = field(default_factory=SeriesIndex)  # "not its sequels"
    moods: MoodMap | None = None  # mood words -> genres (None: moods stay soft wishes)
    known_words: frozenset[str] = frozenset()  # real words: never corrected as typos
    intent_llm: LLMIntentReader | None = None  # for `settings.intent_reader` llm / both

    def facts(self, item_id: str) -> Facts:
        """Title, year, genres and popularity of one item."""
        year, genres, popularity = self.db.facts(item_id)
        title = self.dataset.item(self.dataset.index_of(item_id)).title
        return Facts(item_id, title, year, tuple(genres), popularity)

    def title(self, item_id: str) -> str:
        return self.dataset.item(self.dataset.index_of(item_id)).title
