"""The full MMSRARec graph with its trained parts, and its ablations.

The summarizer runs with the GRPO adapter on the base model, the critic's `r_recon` with the
bare base model (`models.adapters.OnAdapter`), and the candidates are scored by the trained
yes/no scorer (`recommenders/yes_no.py`: the paper's prompt with hybrid item tokens, trained
listwise by `mmsrarec train recommender`). Variants (same frozen candidates):

- `mmsrarec-yes-no`: GRPO summarizer, trained scorer, similar-user retrieval (k = 3).
- `mmsrarec-yes-no-no-retrieval`: the same with k = 0 in the graph.
- `mmsrarec-yes-no-no-rl`: the base summarizer, and the scorer trained on its keywords
  (`mmsrarec train recommender --keywords base`).
- `mmsrarec-yes-no-no-sft`: GRPO summarizer, the base model's zero-shot yes/no answer.

The trained scorer is loaded for the evaluation seed (its ID tokens come from that seed's
SASRec) and refused when its manifest does not match (`YesNoRecommender.load`). It holds a
base model of its own: its LoRA layers are injected in place, so it cannot share the
summarizer's `PeftModel`. Keywords of
the tuned summarizer are cached under their own name (base name + adapter digest), apart from
the base model's. Like the zero-shot graph, the prompt has no older-history sentence and
`fit` summarizes the catalog offline (see `graph.recommender`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from mmsrarec.config import Settings
from mmsrarec.data import Dataset
from mmsrarec.graph.factory import build_context
from mmsrarec.graph.recommender import GraphRecommender, summarize_offline
from mmsrarec.models.adapters import (
    SUMMARIZER,
    OnAdapter,
    adapter_digest,
    adapter_dir,
    attach_adapters,
)
from mmsrarec.nodes.context import GraphSettings
from mmsrarec.recommenders.base import Query, Recommender, TopItems
from mmsrarec.recommenders.rerank import rerank_top, rerank_top_k
from mmsrarec.recommenders.yes_no import YesNoRecommender, default_name
from mmsrarec.summarization import PROMPT_VERSION, KeywordCache
from mmsrarec.summarization.cache import keyword_cache_path
from mmsrarec.training.yes_no_trainer import YesNoConfig

VARIANTS = {
    # name: (summarizer adapter, trained scorer, retrieval)
    "mmsrarec-yes-no": (True, True, True),
    "mmsrarec-yes-no-no-retrieval": (True, True, False),
    "mmsrarec-yes-no-no-rl": (False, True, True),
    "mmsrarec-yes-no-no-sft": (True, False, True),
}


def scorer_name(variant: str) -> str:
    """The trained yes/no scorer a variant loads: trained on the GRPO summarizer's keywords,
    or on the base summarizer's for `mmsrarec-yes-no-no-rl`."""
    keywords = "tuned" if VARIANTS[variant][0] else "base"
    return default_name(YesNoConfig(keywords=keywords))


class TrainedGraphRecommender(GraphRecommender):
    """The graph with the GRPO summarizer adapter and the trained yes/no scorer.

    Args:
        settings: Run settings (`run_dir` holds the adapter and the scorer).
        variant: One of `VARIANTS`.
        run: Graph settings; `k_similar` is forced to 0 for `mmsrarec-yes-no-no-retrieval`.
    """

    def __init__(self, settings: Settings, variant: str = "mmsrarec-yes-no",
                 run: GraphSettings | None = None) -> None:  # fmt: skip
        rl, trained, retrieval = VARIANTS[variant]
        run = run or GraphSettings()
        if not retrieval:
            run = run.model_copy(update={"k_similar": 0})
        super().__init__(settings, run)
        self.name = variant
        self.use_rl, self.use_trained_scorer = rl, trained

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Loads the base model once, attaches the summarizer adapter, loads the trained
        scorer for `seed` and builds the graph context."""
        adapters = {SUMMARIZER: adapter_dir(self.settings, SUMMARIZER)} if self.use_rl else {}
        llm = attach_adapters(self.models.llm(), adapters)
        context = build_context(self.settings, dataset, self.models, self.run, seed=seed, llm=llm,
                                preference=False)  # fmt: skip
        summarizer_name = context.summarizer.name
        if self.use_rl:
            summarizer_name += f"+grpo-{adapter_digest(adapters[SUMMARIZER])}"
        summarizer = OnAdapter(context.summarizer, llm.model, SUMMARIZER if self.use_rl else None,
                               name=summarizer_name)  # fmt: skip
        ranker = None
        if self.use_trained_scorer:
            ranker = YesNoRecommender(self.settings, name=scorer_name(self.name), progress=False)
            ranker.load(dataset, seed)
        base_parts = {
            key: OnAdapter(getattr(context, key), llm.model, None)
            for key in ("critic", "preference", "scorer")
            if getattr(context, key) is not None
        }
        self.context = dataclasses.replace(
            context,
            summarizer=summarizer,
            ranker=ranker,
            keywords=KeywordCache(
                keyword_cache_path(self.settings), summarizer_name, PROMPT_VERSION
            ),  # fmt: skip
            **base_parts,
        )
        summarize_offline(self.context)


class TwoStageRecommender(Recommender):
    """Full ranking in two stages: SASRec's top `k` unseen items, re-ranked by a graph.

    The re-ranked items come first (score 1 + p(yes) share, in (1, 2)); every other item keeps
    SASRec's order below them (scores in (-2, -1)), so the whole catalog is ranked.

    Args:
        first: The candidate generator (a `SASRecRecommender`), fitted in `fit`.
        second: The re-ranker (a `GraphRecommender` or `TrainedGraphRecommender`).
        k: Candidates per user handed to the re-ranker (50 by default).
    """

    def __init__(self, first: Recommender, second: GraphRecommender, k: int = 50) -> None:
        self.first, self.second, self.k = first, second, k
        self.name = f"{second.name}@sasrec-top{k}"

    def fit(self, dataset: Dataset, seed: int) -> None:
        self.first.fit(dataset, seed)
        self.second.fit(dataset, seed)

    def score_candidates(self, queries: Sequence[Query]) -> list[np.ndarray]:
        return self.second.score_candidates(queries)

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        return rerank_top(self.first.score_catalog(queries), queries, self.k,
                          lambda query: self.second.score_candidates([query])[0])  # fmt: skip

    def top_k(self, queries: Sequence[Query], k: int) -> list[TopItems]:
        return rerank_top_k(self.first, queries, self.k, k,
                            lambda query: self.second.score_candidates([query])[0])  # fmt: skip
