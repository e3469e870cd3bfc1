"""Builds the chat's default parts from the run settings.

Files it uses (all derived, all safe to delete), next to those of `graph.factory`:

- `<dataset_dir>/chroma/`: the catalog collection `catalog-<dataset>-<encoder>` (titles +
  keywords), updated in place;
- `<run_dir>/chat.sqlite`: the conversations (checkpointer threads) and their traces, or the
  `mmsrarec_chat` schema of `database_url` (see `mmsrarec.database`).
"""

from __future__ import annotations

import logging

from mmsrarec.chat import lexicon
from mmsrarec.chat.candidates import KNNCandidates
from mmsrarec.chat.catalog import CatalogIndex, vocabulary
from mmsrarec.chat.context import ChatContext, ChatSettings
from mmsrarec.chat.graph import ChatService
from mmsrarec.chat.llm_intent import LLMIntentReader
from mmsrarec.chat.moods import MoodMap
from mmsrarec.chat.parse import SeriesIndex, TitleIndex
from mmsrarec.chat.sqlcatalog import CatalogDB
from mmsrarec.config import Settings
from mmsrarec.data import Dataset, load_dataset, prepare_dataset
from mmsrarec.database import exclusive, open_checkpointer, sqlite_checkpointer
from mmsrarec.graph.graph import build_graph
from mmsrarec.models import ChromaEmbedding, ModelCache
from mmsrarec.nodes.context import GraphContext, GraphSettings
from mmsrarec.tools.index import chroma_client

logger = logging.getLogger(__name__)


def open_dataset(settings: Settings) -> Dataset:
    """The configured dataset; ML-100K (the embedded default) is prepared when missing."""
    if settings.dataset == "ml-100k" and not (settings.dataset_dir / "manifest.json").exists():
        prepare_dataset("ml-100k", settings.datasets_dir)
    return load_dataset(settings.dataset_dir)


def build_chat_context(
    settings: Settings,
    graph: GraphContext,
    models: ModelCache,
    chat: ChatSettings | None = None,
) -> ChatContext:
    """The chat parts around a recommendation-graph context: the catalog index (embedded
    with `settings.embedding_model`, keywords from the graph's keyword store), the SQLite
    metadata for the hard filter, and item-kNN."""
    dataset = graph.dataset
    keywords = graph.keywords.get_many(dataset.items)
    client = chroma_client(settings.dataset_dir / "chroma", settings.chroma_url)
    with exclusive(settings, "catalog-index"):  # replicas: one builds, the others reuse
        catalog = CatalogIndex.build(client, dataset, keywords, ChromaEmbedding(models.encoder()))
    logger.info("catalog index: %d items (%d with keywords)", dataset.n_items, len(keywords))
    chat = chat or ChatSettings()
    db = CatalogDB.build(dataset)
    encoder = models.encoder()
    return ChatContext(
        dataset=dataset,
        catalog=catalog,
        candidates=KNNCandidates.fit(dataset),
        recommender=build_graph(),
        graph=graph,
        titles=TitleIndex.from_items(dataset.items),
        db=db,
        vocabulary=vocabulary(dataset, keywords),
        settings=chat,
        series=SeriesIndex.from_items(dataset.items, lexicon.SERIES),
        moods=MoodMap.build(encoder, db.genres, chat.mood_similarity, chat.mood_margin),
        known_words=whole_words(encoder.tokenizer.get_vocab()),
        intent_llm=(
            LLMIntentReader(models.llm(), sorted(db.genres), db.span)
            if chat.intent_reader != "rules"
            else None
        ),
    )


def whole_words(vocabulary: dict[str, int]) -> frozenset[str]:
    """The whole words of a WordPiece vocabulary (no "##" pieces): real words, never typos."""
    return frozenset(w for w in vocabulary if w.isalpha() and len(w) > 2)


def build_chat_service(
    settings: Settings,
    run: GraphSettings | None = None,
    chat: ChatSettings | None = None,
    *,
    critic: bool = True,
    in_memory: bool = False,
) -> ChatService:
    """The default chat on `settings`: packaged models, conversations in the run dir's SQLite
    or in `database_url` (in memory with `in_memory`)."""
    from mmsrarec.graph.factory import build_context

    dataset = open_dataset(settings)
    models = ModelCache(settings)
    graph = build_context(settings, dataset, models, run, critic=critic)
    context = build_chat_context(settings, graph, models, chat)
    checkpointer = sqlite_checkpointer(None) if in_memory else open_checkpointer(settings, "chat")
    return ChatService(context, checkpointer)
