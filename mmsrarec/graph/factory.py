"""Builds the default `GraphContext` from the run settings: the one place that loads models,
opens caches and the retrieval index for a graph run.

Files it uses (all derived, all safe to delete):

- `<cache_dir>/keywords.sqlite`: item keywords, keyed by item, content, model, prompt version;
- `<cache_dir>/preferences.sqlite`: one-sentence summaries of users' older history;
- `<run_dir>/sasrec/<dataset>/seed<k>/`: the SASRec whose states index the similar users
  (trained here when missing, exactly as `mmsrarec evaluate --method sasrec` trains it);
- `<dataset_dir>/chroma/` (or `settings.chroma_url`): the similar-users knowledge base.
"""

from __future__ import annotations

import logging

from mmsrarec.config import Settings
from mmsrarec.critic import CollabTargets, RewardCritic
from mmsrarec.data import Dataset
from mmsrarec.database import exclusive
from mmsrarec.models import LLM, ModelCache
from mmsrarec.models.server import CompletionServer
from mmsrarec.nodes.context import GraphContext, GraphSettings
from mmsrarec.recommenders.base import Recommender
from mmsrarec.recommenders.methods import build_recommender
from mmsrarec.recommenders.sasrec import SASRecRecommender, sasrec_dir
from mmsrarec.scoring import LLMPreferenceSummarizer, ServerScorer, SharedPrefixScorer
from mmsrarec.summarization import PROMPT_VERSION, KeywordCache, LLMSummarizer
from mmsrarec.summarization.cache import keyword_cache_path
from mmsrarec.tools import CollaborativeIndex, CollaborativeRetriever

logger = logging.getLogger(__name__)


def open_keyword_cache(settings: Settings, summarizer: LLMSummarizer) -> KeywordCache:
    """The keyword store shared by the graph, `mmsrarec summarize` and the retrieval node."""
    return KeywordCache(keyword_cache_path(settings), summarizer.name, PROMPT_VERSION)


def build_retriever(settings: Settings, dataset: Dataset, seed: int) -> CollaborativeRetriever:
    """The similar-users retriever over SASRec states of training users.

    Trains SASRec for `seed` when no checkpoint with the same fingerprint exists, and builds
    the Chroma knowledge base when it is missing or stale; both are reused afterwards.
    """
    sasrec = SASRecRecommender(save_dir=sasrec_dir(settings))
    index = CollaborativeIndex.for_dataset_dir(settings.dataset_dir, settings.chroma_url)
    with exclusive(settings, "similar-users-index"):  # replicas: one builds, the others reuse
        sasrec.fit(dataset, seed)  # reloads a matching checkpoint instead of training
        report = index.build(dataset, sasrec)
    logger.info("similar-users knowledge base %s: %d users", report.collection, report.entries)
    return CollaborativeRetriever(index, dataset, sasrec)


def build_context(
    settings: Settings,
    dataset: Dataset,
    models: ModelCache,
    run: GraphSettings | None = None,
    *,
    seed: int = 0,
    llm: LLM | None = None,
    critic: bool = True,
    preference: bool = True,
) -> GraphContext:
    """The default parts: one LLM (`settings.model`) summarizes, reconstructs for the critic,
    summarizes older history and scores candidates; the sentence encoder scores `r_info`.
    With `settings.llm_server_url`, that server writes the keywords and the preference
    sentence and scores the candidates (`models.server`).

    Args:
        settings: Run settings (model, paths, Chroma server).
        dataset: The prepared dataset the graph serves.
        models: Loads each model once; pass the same cache to several contexts.
        run: Graph settings (history length, k, critic threshold and rounds).
        seed: Which SASRec seed indexes the similar users.
        llm: Use this LLM instead of `models.llm()` (e.g. one with LoRA adapters).
        critic: False: keep the summarizer's first draft (no critic loop).
        preference: False: no summary of the older history in the prompt.
    """
    run = run or GraphSettings()
    llm = llm or models.llm()
    with_images = sum(1 for item in dataset.items if item.image)
    if with_images and not llm.is_vision:
        logger.warning(
            "%d of %d items have an image; `%s` reads text only, so the images are "
            "ignored (a vision-language `model` reads them)",
            with_images,
            dataset.n_items,
            settings.model,
        )
    # With a server, it generates and scores; `llm` renders prompts and runs the critic.
    server = CompletionServer(settings.llm_server_url) if settings.llm_server_url else None
    summarizer = LLMSummarizer(llm, server=server)
    retriever = build_retriever(settings, dataset, seed) if run.k_similar > 0 else None
    return GraphContext(
        dataset=dataset,
        summarizer=summarizer,
        critic=(
            RewardCritic(
                models.encoder(),
                llm,
                threshold=run.threshold,
                collab=CollabTargets.from_dataset(dataset),
            )
            if critic
            else None
        ),
        keywords=open_keyword_cache(settings, summarizer),
        retriever=retriever,
        scorer=ServerScorer(server) if server is not None else SharedPrefixScorer(llm),
        preference=(
            LLMPreferenceSummarizer(llm, settings.cache_dir / "preferences.sqlite", server=server)
            if preference
            else None
        ),
        settings=run,
        ranker=build_ranker(settings, dataset, run.scorer, seed),
    )


def build_ranker(
    settings: Settings, dataset: Dataset, scorer: str, seed: int
) -> Recommender | None:
    """The fitted catalog recommender named `scorer` (trained once, then reloaded), or None
    for the yes/no prompt scorer."""
    if scorer == "yes-no":
        return None
    ranker = build_recommender(scorer, settings)
    ranker.fit(dataset, seed)
    return ranker
