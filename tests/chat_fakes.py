"""Scripted parts for chat, web and browser tests: a chat over the tiny dataset that runs the
real graphs (chat and recommendation) with fakes in place of the LLM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmsrarec.chat.candidates import KNNCandidates
from mmsrarec.chat.catalog import CatalogIndex
from mmsrarec.chat.context import ChatContext, ChatSettings
from mmsrarec.chat.graph import ChatService
from mmsrarec.chat.parse import TitleIndex
from mmsrarec.data import Dataset, Item
from mmsrarec.graph.graph import build_graph, open_checkpointer
from mmsrarec.nodes.context import GraphContext, GraphSettings
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
        settings=ChatSettings(min_similarity=-1.0, top_k=3, n_candidates=8),
    )


def make_chat_service(dataset: Dataset, encoder) -> ChatService:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    return ChatService(make_chat_context(dataset, encoder, client), open_checkpointer(None))
