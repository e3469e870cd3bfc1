"""Run context of the chat graph: the parts its nodes call, and its settings."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, ConfigDict, Field

from mmsrarec.chat.parse import TitleIndex
from mmsrarec.chat.state import Match
from mmsrarec.data import Dataset
from mmsrarec.nodes.context import GraphContext


class CatalogSearch(Protocol):
    """Finds catalog items that fit a description."""

    def search(self, text: str, k: int) -> list[Match]:
        """The `k` items closest to `text`, best first."""
        ...


class CandidateSource(Protocol):
    """Proposes items to re-rank for a history (a cheap first stage before the LLM)."""

    def top(self, history: Sequence[str], n: int, exclude: Collection[str]) -> list[str]:
        """Up to `n` raw item ids, best first, none of them in `exclude`."""
        ...


class ChatSettings(BaseModel):
    """Settings of the chat graph."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = Field(5, ge=1, le=50, description="Recommendations per answer.")
    n_candidates: int = Field(
        20, ge=1, le=500, description="Candidates the recommendation graph re-ranks per turn."
    )
    n_matches: int = Field(5, ge=1, le=50, description="Catalog matches kept for a description.")
    min_similarity: float = Field(
        0.3, description="Catalog matches below this similarity are ignored."
    )
    max_message_chars: int = Field(2000, ge=1, description="Longest message accepted.")


@dataclass
class ChatContext:
    """What the chat nodes need; see `mmsrarec.chat.factory.build_chat_context`."""

    dataset: Dataset
    catalog: CatalogSearch
    candidates: CandidateSource
    recommender: CompiledStateGraph  # the recommendation graph (`build_graph()`)
    graph: GraphContext  # its context
    titles: TitleIndex
    settings: ChatSettings = field(default_factory=ChatSettings)
