"""Chroma in client-server mode, for real: `chroma run` (the CLI of the pinned chromadb) on a
loopback port. The similar-users tool, the catalog search and the recommendation graph give
the same results on the server as on the embedded store; the data outlives a server restart;
an unreachable server is one clear error."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from chat_fakes import FixedCritic, MemoryKeywords, OverlapScorer, WordSummarizer
from conftest import write_tiny_jsonl
from services import ChromaServer, chroma_missing, free_port

from mmsrarec.chat.catalog import CatalogIndex
from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.errors import ConfigError
from mmsrarec.graph.graph import build_graph
from mmsrarec.models import ChromaEmbedding
from mmsrarec.models.sasrec import SASRecConfig
from mmsrarec.nodes.context import GraphContext, GraphSettings
from mmsrarec.recommenders.sasrec import SASRecRecommender
from mmsrarec.tools import CollaborativeIndex, CollaborativeRetriever, make_similar_users_tool
from mmsrarec.tools.index import chroma_client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chroma_missing() is not None, reason=chroma_missing() or ""),
]
TINY = SASRecConfig(
    max_len=8, hidden=16, layers=1, heads=2, lr=1e-2, batch_size=4, max_epochs=4, eval_every=2
)
QUERIES = ["space opera", "a romantic comedy", "horror film", "documentary", "Movie 7"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The tiny dataset, a fitted SASRec, a Chroma server and an embedded store, both built."""
    root = tmp_path_factory.mktemp("chroma_server")
    folder, _ = prepare_dataset(write_tiny_jsonl(root / "tiny"), root / "data", negatives=5)
    dataset = load_dataset(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sasrec = SASRecRecommender(TINY, save_dir=root / "sasrec", progress=False)
        sasrec.fit(dataset, seed=0)
    finally:
        torch.set_num_threads(threads)
    server = ChromaServer(root / "server-data")
    embedded = CollaborativeIndex(root / "embedded")
    remote = CollaborativeIndex(server_url=server.url)
    assert embedded.build(dataset, sasrec).rebuilt and remote.build(dataset, sasrec).rebuilt
    yield SimpleNamespace(
        root=root, dataset=dataset, sasrec=sasrec, server=server, embedded=embedded, remote=remote
    )
    server.stop()


def neighbours(world, index: CollaborativeIndex) -> tuple[dict[str, list], list[float]]:
    """Each user's 3 neighbours (id, next item) and all their similarities in one list."""
    retriever = CollaborativeRetriever(index, world.dataset, world.sasrec)
    found, similarities = {}, []
    for user in world.dataset.users:
        history = [world.dataset.item(i).item_id for i in world.dataset.history(user, "test")]
        near = retriever.similar_users(user, history, 3)
        found[user] = [(n["user_id"], n["next_item_id"]) for n in near]
        similarities += [n["similarity"] for n in near]
    return found, similarities


def same(a: tuple[dict, list[float]], b: tuple[dict, list[float]]) -> bool:
    """Same neighbours; similarities equal to 1e-5 (they cross HTTP as float32 JSON)."""
    return a[0] == b[0] and a[1] == pytest.approx(b[1], abs=1e-5)


def test_similar_users_and_the_tool_equal_the_embedded_store(world):
    on_server = neighbours(world, world.remote)
    assert same(on_server, neighbours(world, world.embedded))
    assert all(len(found) == 3 for found in on_server[0].values())
    tools = [
        make_similar_users_tool(
            CollaborativeRetriever(index, world.dataset, world.sasrec),
            world.dataset,
            MemoryKeywords(),
        )
        for index in (world.remote, world.embedded)
    ]
    for user in world.dataset.users[:4]:
        remote, embedded = (tool.invoke({"user_id": user, "k": 3}) for tool in tools)
        assert len(remote) == 3
        assert [{**r, "similarity": 0} for r in remote] == [
            {**r, "similarity": 0} for r in embedded
        ]


def test_catalog_search_equals_the_embedded_store(world, tiny_encoder):
    embedding = ChromaEmbedding(tiny_encoder)
    remote = CatalogIndex.build(chroma_client(None, world.server.url), world.dataset, {}, embedding)
    embedded = CatalogIndex.build(
        chroma_client(world.root / "catalog"), world.dataset, {}, embedding
    )

    def ranking(index: CatalogIndex, query: str, k: int, within=None) -> list:
        # the tiny encoder gives many items the same similarity: order ties by id
        found = index.search(query, k, within)
        return sorted((-round(m["similarity"], 4), m["item_id"]) for m in found)

    everything = world.dataset.n_items
    for query in QUERIES:
        assert len(remote.search(query, 5)) == 5
        assert ranking(remote, query, everything) == ranking(embedded, query, everything)
        top = [m["similarity"] for m in remote.search(query, 5)]
        assert top == pytest.approx([m["similarity"] for m in embedded.search(query, 5)], abs=1e-4)
    ten = [item.item_id for item in world.dataset.items[:10]]
    assert ranking(remote, "space opera", 10, ten) == ranking(embedded, "space opera", 10, ten)


def test_the_graph_gives_the_same_recommendations_on_the_server(world):
    def run(index: CollaborativeIndex, user: str) -> dict:
        context = GraphContext(
            dataset=world.dataset,
            summarizer=WordSummarizer(),
            critic=FixedCritic(),
            keywords=MemoryKeywords(),
            retriever=CollaborativeRetriever(index, world.dataset, world.sasrec),
            scorer=OverlapScorer(),
            settings=GraphSettings(k_similar=3, n_history=3, top_k=5),
        )
        inputs = {"user_id": user, "history": [], "candidates": [], "top_k": 5}
        return build_graph().invoke(inputs, context=context)

    for user in ("u1", "u5", "u9"):
        remote, embedded = run(world.remote, user), run(world.embedded, user)
        assert remote["similar_users"] and remote["recommendations"]
        # the same neighbours; similarities cross HTTP as float32 JSON: equal to 1e-5
        strip = [{**n, "similarity": None} for n in remote["similar_users"]]
        assert strip == [{**n, "similarity": None} for n in embedded["similar_users"]]
        assert [n["similarity"] for n in remote["similar_users"]] == pytest.approx(
            [n["similarity"] for n in embedded["similar_users"]], abs=1e-5
        )
        assert [(r["item_id"], r["score"]) for r in remote["recommendations"]] == [
            (r["item_id"], r["score"]) for r in embedded["recommendations"]
        ]


def test_the_data_outlives_a_server_restart(world):
    before = neighbours(world, world.remote)
    world.server.stop()
    world.server.start()  # same folder, same port
    index = CollaborativeIndex(server_url=world.server.url)  # a new client, as a new process
    assert index.build(world.dataset, world.sasrec).rebuilt is False  # found complete
    assert same(neighbours(world, index), before)


def test_an_unreachable_server_is_one_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError, match="no Chroma server answers at `chroma_url`") as caught:
        CollaborativeIndex(server_url=url)
    assert "\n" not in str(caught.value) and url in str(caught.value)
