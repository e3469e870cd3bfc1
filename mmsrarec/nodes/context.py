"""Run context of the recommendation graph: the parts each node calls, and its settings.

LangGraph passes this to every node as `runtime.context` (`graph.invoke(..., context=ctx)`);
it is never checkpointed. Each part is a small protocol (`mmsrarec.types`), so a developer
can swap in their own summarizer, critic, retriever or scorer without touching the nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmsrarec.data import Dataset
from mmsrarec.recommenders.base import Recommender
from mmsrarec.recommenders.debias import log_popularity
from mmsrarec.recommenders.explain import SHORTLIST, WINDOW
from mmsrarec.recommenders.methods import CATALOG_SCORERS
from mmsrarec.scoring.motivations import MotivationModel
from mmsrarec.types import (
    CandidateScorer,
    Critic,
    KeywordBackfill,
    KeywordStore,
    PreferenceSummarizer,
    Retriever,
    Summarizer,
)

# The popularity-bias control's default: the largest gamma costing at most 0.0025 validation
# NDCG@10 for the default scorer (`benchmarks/debias.py`, mmsrarec, 943 users). On the test
# users: NDCG@10 +0.0006 [-0.0036, +0.0048], tail share of the top 10 +0.055 [+0.049, +0.060].
# Other scorers' scores have other scales (cf-ensemble's own rule gives 0.2).
DEBIAS = 0.3
MAX_DEBIAS = 10.0
MAX_EVIDENCE_WINDOW = 500


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
    overfetch: int = Field(
        0,
        ge=0,
        description="Items the recommend node ranks beyond `top_k`, for filter nodes after it "
        "(`GraphBuilder`); the last node cuts the list back to `top_k`.",
    )
    stage: str = Field("test", pattern="^(valid|test)$", description="Which frozen split to serve.")
    debias: float = Field(
        DEBIAS, ge=0.0, le=MAX_DEBIAS,
        description="Popularity-bias control: a catalog ranker's scores less debias x "
        "log(1 + training count) (0 = off; chosen on validation: benchmarks/debias.py).",
    )  # fmt: skip
    evidence_window: int = Field(
        WINDOW, ge=0, le=MAX_EVIDENCE_WINDOW,
        description="Most recent history items tried by leave-one-out for each recommendation's "
        "cited history (each one re-scoring: the cost grows with it); 0 = none cited.",
    )  # fmt: skip
    evidence_shortlist: int = Field(
        SHORTLIST, ge=0, le=500,
        description="Of those, how many a ranker with an LLM member re-scores, chosen by its "
        "cheaper members (the cited drops stay exact); 0 = re-score every one.",
    )  # fmt: skip
    scorer: str = Field(
        "mmsrarec",
        description="How the recommend node scores: a catalog recommender (`mmsrarec`, the "
        "fused system; `llm-recommender`, the LLM alone; any evaluation method) scoring every "
        "item in one pass per user, or `yes-no`, the paper's p(yes) prompt per candidate.",
    )

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, value: str) -> str:
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
    # When set, items without keywords are handed to it and the run goes on without them
    # (a server); otherwise the summarize node writes them in the run (the CLI).
    backfill: KeywordBackfill | None = None

    @cached_property
    def motivations(self) -> MotivationModel:
        """Users' motivations over this catalog (`scoring.motivations`), built once."""
        return MotivationModel(self.dataset, self.keywords.get_many(self.dataset.items))

    @cached_property
    def log_popularity(self) -> np.ndarray:
        """log(1 + training count) per item index, computed once (for `settings.debias`)."""
        return log_popularity(self.dataset)
