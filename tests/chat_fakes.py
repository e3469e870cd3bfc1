"""Scripted parts for chat, web and browser tests: a chat over the tiny dataset that runs the
real graphs (chat and recommendation) with fakes in place of the LLM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmsrarec.chat.candidates import KNNCandidates
from mmsrarec.chat.catalog import CatalogIndex, vocabulary
from mmsrarec.chat.context import ChatContext, ChatSettings
from mmsrarec.chat.graph import ChatService
from mmsrarec.chat.parse import TitleIndex
from mmsrarec.chat.sqlcatalog import CatalogDB
from mmsrarec.critic.rewards import RewardWeights, describe_total
from mmsrarec.data import Dataset, Item
from mmsrarec.graph.graph import build_graph, open_checkpointer
from mmsrarec.nodes.context import GraphContext, GraphSettings
from mmsrarec.recommenders.base import Recommender
from mmsrarec.scoring.evidence import tokens
from mmsrarec.types import Judgement, SimilarUser


class WordSummarizer:
    """Keywords = the item text's content words."""

    name = "word-summarizer"

    def summarize(self, items: Sequence[Item], feedback: Mapping[str, str]) -> dict[str, list[str]]:
        return {item.item_id: sorted(tokens(item.text))[:4] or ["plain"] for item in items}


class FixedCritic:
    """Every draft scores 0.8 (above the default threshold: one round)."""

    name = "fixed-critic"
    weights = RewardWeights()

    def describe(self) -> dict:
        return describe_total(self.weights, collab=False)  # it scores no collaborative term

    def judge(self, items: Sequence[Item], drafts: Mapping[str, list[str]]) -> dict[str, Judgement]:
        return {
            item_id: Judgement(
                total=0.8, components={"r_info": 0.7, "r_recon": 0.9, "r_len": 1.0}, feedback=""
            )
            for item_id in drafts
        }


class MemoryKeywords:
    """An in-memory `KeywordStore`."""

    def __init__(self) -> None:
        self.rows: dict[str, list[str]] = {}

    def get_many(self, items: Sequence[Item]) -> dict[str, list[str]]:
        return {i.item_id: self.rows[i.item_id] for i in items if i.item_id in self.rows}

    def put(self, item: Item, keywords: list[str], reward: float | None) -> None:
        self.rows[item.item_id] = list(keywords)


class OverlapScorer:
    """p(yes) grows with the words a candidate shares with the prompt prefix."""

    name = "overlap-scorer"

    def score(self, prefix: str, suffixes: Sequence[str]) -> list[float]:
        words = tokens(prefix)
        return [min(0.99, 0.3 + 0.1 * len(words & tokens(s))) for s in suffixes]


class FirstUsersRetriever:
    """The first `k` dataset users, each with its last training item as the next item."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def similar_users(self, user_id: str, history: Sequence[str], k: int) -> list[SimilarUser]:
        found = []
        for n, user in enumerate(self.dataset.users[:k]):
            item = self.dataset.item(self.dataset.train_sequence(user)[-1])
            found.append(
                SimilarUser(
                    user_id=user,
                    similarity=round(0.9 - 0.1 * n, 2),
                    next_item_id=item.item_id,
                    next_title=item.title,
                    keywords=[],
                )
            )
        return found


def make_chat_context(dataset: Dataset, encoder, client) -> ChatContext:
    """A chat over `dataset` with scripted parts; `encoder` embeds the catalog in `client`."""
    from mmsrarec.models import ChromaEmbedding

    graph = GraphContext(
        dataset=dataset,
        summarizer=WordSummarizer(),
        critic=FixedCritic(),
        keywords=MemoryKeywords(),
        retriever=FirstUsersRetriever(dataset),
        scorer=OverlapScorer(),
        settings=GraphSettings(k_similar=2, n_history=3),
    )
    return ChatContext(
        dataset=dataset,
        catalog=CatalogIndex.build(client, dataset, {}, ChromaEmbedding(encoder)),
        candidates=KNNCandidates.fit(dataset),
        recommender=build_graph(),
        graph=graph,
        titles=TitleIndex.from_items(dataset.items),
        db=CatalogDB.build(dataset),
        vocabulary=vocabulary(dataset, {}),
        settings=ChatSettings(min_similarity=-1.0, top_k=3, n_candidates=8, min_pool=3),
    )


def make_chat_service(dataset: Dataset, encoder) -> ChatService:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    return ChatService(make_chat_context(dataset, encoder, client), open_checkpointer(None))


GENRE_CYCLE = [
    ("Comedy", "Romance"),
    ("Horror",),
    ("Drama",),
    ("Action", "Thriller"),
    ("Comedy",),
    ("Children's", "Comedy"),
]


def write_genre_catalog(folder, n_items: int = 36, n_users: int = 14):
    """A tiny catalog in ML-100K's item-text format ("Film 3 (1961). Genres: Drama."): six
    genre patterns in turn, years spread over 1950-1998, one film listed twice ("Twin (1997)",
    ids d1 and d2, as ML-100K does) and two "Sabrina"s (1954, 1995). Users walk it in order."""
    import json
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(1, n_items + 1):
        genres = GENRE_CYCLE[i % len(GENRE_CYCLE)]
        year = 1950 + (i * 7) % 49
        rows.append((f"f{i}", f"Film {i} ({year})", ", ".join(genres)))
    rows += [
        ("d1", "Twin (1997)", "Comedy, Drama"),
        ("d2", "Twin (1997)", "Comedy, Drama"),
        ("s1", "Sabrina (1954)", "Comedy, Romance"),
        ("s2", "Sabrina (1995)", "Comedy, Romance"),
    ]
    with (folder / "catalog.jsonl").open("w", encoding="utf-8") as handle:
        for item_id, title, genres in rows:
            row = {"item_id": item_id, "title": title, "description": f"Genres: {genres}."}
            handle.write(json.dumps(row) + "\n")
    ids = [row[0] for row in rows]
    with (folder / "interactions.jsonl").open("w", encoding="utf-8") as handle:
        for u in range(n_users):
            start = (3 * u) % (len(ids) - 10)
            for step in range(6 + u % 4):
                row = {"user_id": f"u{u}", "item_id": ids[start + step], "timestamp": 1000 + step}
                handle.write(json.dumps(row) + "\n")
    return folder


class WordRanker(Recommender):
    """A catalog ranker on item text alone: an item scores the content words it shares with
    the history's items. `add_items` takes in new items (the hook servers call)."""

    name = "word-ranker"
    reads_text = True

    def __init__(self, dataset: Dataset) -> None:
        self.words = [frozenset()] + [frozenset(tokens(item.text)) for item in dataset.items]
        self.added: list[str] = []

    def add_items(self, items: Sequence[Item]) -> None:
        self.words = self.words + [frozenset(tokens(item.text)) for item in items]
        self.added += [item.item_id for item in items]

    def score_catalog(self, queries):
        import numpy as np

        rows = []
        for query in queries:
            seen = set().union(*(self.words[i] for i in query.history))
            rows.append([len(words & seen) + 0.001 * i for i, words in enumerate(self.words)])
        return np.array(rows, dtype=float)


def make_recommendation_service(chat: ChatService, settings, *, ranker: bool = False, **kwargs):
    """The API's service over a scripted chat's graph parts (optionally with `WordRanker`)."""
    import dataclasses

    from mmsrarec.serving import RecommendationService

    context = chat.context.graph
    if ranker:
        context = dataclasses.replace(context, ranker=WordRanker(context.dataset))
    return RecommendationService(settings, context, **kwargs)
