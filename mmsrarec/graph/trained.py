"""The full MMSRARec graph with trained adapters, and its ablations.

One base model in memory serves every role: the summarizer runs with the GRPO adapter, the
scorer with the SFT adapter, and the critic's `r_recon` and the preference sentence with the
bare base model (`training.adapters.OnAdapter`). Variants (same frozen candidates):

- `mmsrarec-yes-no`: both adapters, similar-user retrieval (k = 3) (the paper's design).
- `mmsrarec-yes-no-no-retrieval`: both adapters, k = 0.
- `mmsrarec-yes-no-no-rl`: the base summarizer (no GRPO adapter), SFT scorer, retrieval.
- `mmsrarec-yes-no-no-sft`: GRPO summarizer, base scorer (no SFT adapter), retrieval.

Adapters come from `mmsrarec train summarizer|recommender` (trained once, seed 0); the
evaluation seeds vary SASRec, hence the similar users. Keywords of the tuned summarizer are
cached under their own name (base name + adapter digest), apart from the base model's. Like
the zero-shot graph, the prompt has no older-history sentence and `fit` summarizes the catalog
offline (see `graph.recommender`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from mmsrarec.config import Settings
from mmsrarec.data import Dataset
from mmsrarec.graph.factory import build_context
from mmsrarec.graph.recommender import GraphRecommender, summarize_offline
from mmsrarec.nodes.context import GraphSettings
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.summarization import PROMPT_VERSION, KeywordCache
from mmsrarec.summarization.cache import keyword_cache_path
from mmsrarec.training.adapters import (
    RECOMMENDER,
    SUMMARIZER,
    OnAdapter,
    adapter_digest,
    adapter_dir,
    attach_adapters,
)
from mmsrarec.training.recommender import cached_keywords
from mmsrarec.types import KeywordsFor, SimilarFor, SimilarUser

VARIANTS = {
    # name: (summarizer adapter, recommender adapter, retrieval)
    "mmsrarec-yes-no": (True, True, True),
    "mmsrarec-yes-no-no-retrieval": (True, True, False),
    "mmsrarec-yes-no-no-rl": (False, True, True),
    "mmsrarec-yes-no-no-sft": (True, False, True),
}


class TrainedGraphRecommender(GraphRecommender):
    """The graph with the trained LoRA adapters switched per role on one base model.

    Args:
        settings: Run settings (`run_dir` holds the adapters under `train/<role>/<dataset>`).
        variant: One of `VARIANTS`.
        run: Graph settings; `k_similar` is forced to 0 for `mmsrarec-yes-no-no-retrieval`.
    """

    def __init__(self, settings: Settings, variant: str = "mmsrarec-yes-no",
                 run: GraphSettings | None = None) -> None:  # fmt: skip
        rl, sft, retrieval = VARIANTS[variant]
        run = run or GraphSettings()
        if not retrieval:
            run = run.model_copy(update={"k_similar": 0})
        super().__init__(settings, run)
        self.name = variant
        self.use_rl, self.use_sft = rl, sft

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Loads the base model once, attaches the adapters and builds the graph context."""
        adapters = {}
        if self.use_rl:
            adapters[SUMMARIZER] = adapter_dir(self.settings, SUMMARIZER)
        if self.use_sft:
            adapters[RECOMMENDER] = adapter_dir(self.settings, RECOMMENDER)
        base = self.models.llm()
        llm = attach_adapters(base, adapters)
        context = build_context(self.settings, dataset, self.models, self.run, seed=seed, llm=llm,
                                preference=False)  # fmt: skip
        summarizer_name = context.summarizer.name
        if self.use_rl:
            summarizer_name += f"+grpo-{adapter_digest(adapters[SUMMARIZER])}"
        summarizer = OnAdapter(context.summarizer, llm.model, SUMMARIZER if self.use_rl else None,
                               name=summarizer_name)  # fmt: skip
        scorer = OnAdapter(context.scorer, llm.model, RECOMMENDER if self.use_sft else None)
        if self.use_sft:
            scorer.name = f"{context.scorer.name}+sft-{adapter_digest(adapters[RECOMMENDER])}"
        base_parts = {
            key: OnAdapter(getattr(context, key), llm.model, None)
            for key in ("critic", "preference")
            if getattr(context, key) is not None
        }
        self.context = dataclasses.replace(
            context,
            summarizer=summarizer,
            scorer=scorer,
            keywords=KeywordCache(
                keyword_cache_path(self.settings), summarizer_name, PROMPT_VERSION
            ),  # fmt: skip
            **base_parts,
        )
        summarize_offline(self.context)


def inference_prompt_parts(
    settings: Settings, dataset: Dataset, k_similar: int, seed: int = 0
) -> tuple[KeywordsFor, SimilarFor | None]:
    """What the evaluated graph puts in its prompts, for the SFT examples: keywords of the
    summarizer `mmsrarec` runs with (the GRPO adapter when trained, else the base model),
    the whole catalog summarized first, and the `k_similar` similar users of SASRec `seed`
    with their next items' keywords (None when `k_similar` is 0)."""
    run = GraphSettings(k_similar=k_similar, scorer="yes-no")
    if adapter_dir(settings, SUMMARIZER).is_dir():
        graph: GraphRecommender = TrainedGraphRecommender(settings, "mmsrarec-yes-no-no-sft", run)
    else:
        graph = GraphRecommender(settings, run)
    graph.fit(dataset, seed)
    context = graph.context
    assert context is not None
    keywords_for = cached_keywords(context.keywords, dataset)
    retriever = context.retriever
    if retriever is None:
        return keywords_for, None

    def similar_for(user: str, history: list[str]) -> list[SimilarUser]:
        found = retriever.similar_users(user, history, k_similar)
        return [{**n, "keywords": keywords_for(dataset.by_id(n["next_item_id"]))} for n in found]

    return keywords_for, similar_for


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
        catalog = np.asarray(self.first.score_catalog(queries), dtype=np.float64)
        out = np.empty_like(catalog)
        for row, query in enumerate(queries):
            scores = catalog[row].copy()
            scores[0] = -np.inf
            scores[list(query.history)] = -np.inf
            order = np.argsort(-scores, kind="stable")  # best first
            top = order[: self.k]
            ranks = np.empty(len(order))
            ranks[order] = np.arange(len(order))
            out[row] = -1.0 - ranks / len(order)  # SASRec's order, below the re-ranked block
            shortlist = Query(query.user_id, query.history, tuple(int(i) for i in top))
            out[row, top] = 1.0 + self.second.score_candidates([shortlist])[0]
        return out
