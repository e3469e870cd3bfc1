"""Similar-user retrieval: training-only knowledge base, persistence, the tool and the node."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import get_type_hints

import numpy as np
import pytest
import torch
from conftest import write_tiny_jsonl
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from mmsrarec.data import Dataset, Item, load_dataset, prepare_dataset
from mmsrarec.errors import ConfigError, DataError, NotPreparedError
from mmsrarec.models.sasrec import SASRecConfig
from mmsrarec.nodes.context import GraphContext, GraphSettings
from mmsrarec.nodes.retrieval import retrieve
from mmsrarec.nodes.state import RecommendationState
from mmsrarec.recommenders.sasrec import SASRecRecommender, load_sasrec
from mmsrarec.tools import (
    CollaborativeIndex,
    CollaborativeRetriever,
    SimilarUsersArgs,
    kb_entries,
    kb_fingerprint,
    make_similar_users_tool,
)
from mmsrarec.tools.index import collection_name, parse_server_url

TINY = SASRecConfig(
    max_len=8, hidden=16, layers=1, heads=2, lr=1e-2, batch_size=4, max_epochs=4, eval_every=2
)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The tiny dataset, a SASRec fitted on it (saved, reloaded) and an empty store folder."""
    root = tmp_path_factory.mktemp("retrieval")
    folder, _ = prepare_dataset(write_tiny_jsonl(root / "tiny"), root / "data", negatives=5)
    dataset = load_dataset(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        SASRecRecommender(TINY, save_dir=root / "sasrec", progress=False).fit(dataset, seed=0)
        sasrec = load_sasrec(root / "sasrec", 0, progress=False)
    finally:
        torch.set_num_threads(threads)
    return SimpleNamespace(root=root, folder=folder, dataset=dataset, sasrec=sasrec)


@pytest.fixture(scope="module")
def retriever(kb: SimpleNamespace) -> CollaborativeRetriever:
    index = CollaborativeIndex(kb.root / "shared_chroma")
    index.build(kb.dataset, kb.sasrec)
    return CollaborativeRetriever(index, kb.dataset, kb.sasrec)


def _ids(dataset: Dataset, indices: list[int]) -> list[str]:
    return [dataset.item(i).item_id for i in indices]


def _visible(dataset: Dataset, user: str) -> list[str]:
    return _ids(dataset, dataset.history(user, "test"))


# ----- the knowledge base -------------------------------------------------------------------


def test_kb_holds_only_training_positions(kb, retriever):
    dataset = kb.dataset
    stored = retriever.collection.get(include=["metadatas", "embeddings"])
    eligible = {u for u in dataset.users if len(dataset.train_sequence(u)) >= 2}
    assert set(stored["ids"]) == eligible
    for user, meta, vector in zip(
        stored["ids"], stored["metadatas"], stored["embeddings"], strict=True
    ):
        train, full = dataset.train_sequence(user), dataset.sequence(user)
        assert meta == {"user_id": user, "next_item_id": dataset.item(train[-1]).item_id}
        if len(full) >= 3:  # evaluable: its validation and test items are never a KB target
            assert meta["next_item_id"] not in _ids(dataset, full[-2:])
        expected = kb.sasrec.embed_histories([train[:-1]])[0]
        np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=1e-5)


def test_kb_does_not_depend_on_validation_or_test_items(kb):
    dataset = kb.dataset
    changed = {  # replace every evaluable user's last two items
        u: seq[:-2] + [1, 2] if len(seq) >= 3 else seq for u, seq in dataset.sequences.items()
    }
    other = dataclasses.replace(dataset, sequences=changed)
    assert kb_entries(other) == kb_entries(dataset)
    assert kb_fingerprint(other, kb.sasrec) == kb_fingerprint(dataset, kb.sasrec)


def test_fingerprint_follows_the_sasrec_weights(kb):
    before = kb_fingerprint(kb.dataset, kb.sasrec)
    changed = load_sasrec(kb.root / "sasrec", 0, progress=False)
    with torch.no_grad():
        changed.model.final_norm.bias.add_(1e-3)
    assert kb_fingerprint(kb.dataset, changed) != before


# ----- the retriever --------------------------------------------------------------------------


def test_returns_k_neighbours_never_the_user_itself(kb, retriever):
    dataset = kb.dataset
    for user in dataset.eval_users:
        neighbours = retriever.similar_users(user, _visible(dataset, user), k=3)
        assert len(neighbours) == 3
        assert user not in [n["user_id"] for n in neighbours]
        similarities = [n["similarity"] for n in neighbours]
        assert similarities == sorted(similarities, reverse=True)
        for n in neighbours:
            next_item = dataset.item(dataset.train_sequence(n["user_id"])[-1])
            assert (n["next_item_id"], n["next_title"]) == (next_item.item_id, next_item.title)
            assert n["keywords"] == []
    everyone = retriever.similar_users("u0", _visible(dataset, "u0"), k=50)
    assert len(everyone) == retriever.size - 1
    assert retriever.similar_users("u0", _visible(dataset, "u0"), k=0) == []


def test_similarity_is_the_cosine_of_sasrec_states(kb, retriever):
    dataset = kb.dataset
    history = _visible(dataset, "u1")
    top = retriever.similar_users("u1", history, k=1)[0]
    a = kb.sasrec.embed_histories([[dataset.index_of(i) for i in history]])[0]
    b = kb.sasrec.embed_histories([dataset.train_sequence(top["user_id"])[:-1]])[0]
    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert top["similarity"] == pytest.approx(cosine, abs=1e-4)


def test_bad_histories_raise_one_line_data_errors(kb, retriever):
    with pytest.raises(DataError, match="empty history") as empty:
        retriever.similar_users("u0", [], k=3)
    with pytest.raises(DataError, match="`nope`") as unknown:
        retriever.similar_users("u0", ["m1", "nope"], k=3)
    assert "\n" not in str(empty.value) + str(unknown.value)
    with pytest.raises(ConfigError, match="`k`"):
        retriever.similar_users("u0", ["m1"], k=-1)


# ----- building and persistence ---------------------------------------------------------------

BUILD_IN_SUBPROCESS = """
import json, sys
from pathlib import Path
from mmsrarec.data import load_dataset
from mmsrarec.recommenders.sasrec import load_sasrec
from mmsrarec.tools import CollaborativeIndex, CollaborativeRetriever
folder, save_dir, store = map(Path, sys.argv[1:4])
dataset, sasrec = load_dataset(folder), load_sasrec(save_dir, 0, progress=False)
index = CollaborativeIndex(store)
report = index.build(dataset, sasrec)
retriever = CollaborativeRetriever(index, dataset, sasrec)
found = {u: retriever.similar_users(u, [dataset.item(i).item_id
         for i in dataset.history(u, "test")], 3) for u in ("u0", "u5")}
print(json.dumps({"rebuilt": report.rebuilt, "entries": report.entries, "found": found}))
"""


def test_persists_across_processes_and_is_not_rebuilt(kb):
    store = kb.root / "persisted"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    args = [str(kb.folder), str(kb.root / "sasrec"), str(store)]
    done = subprocess.run(
        [sys.executable, "-c", BUILD_IN_SUBPROCESS, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    built = json.loads(done.stdout.strip().splitlines()[-1])
    assert built["rebuilt"] and built["entries"] == len(kb_entries(kb.dataset)[0])

    index = CollaborativeIndex(store)  # a new PersistentClient in this process
    retriever = CollaborativeRetriever(index, kb.dataset, kb.sasrec)
    for user, expected in built["found"].items():
        found = retriever.similar_users(user, _visible(kb.dataset, user), 3)
        # Same neighbours; the cosine may differ in the 6th decimal between processes
        # (the float sums of the SASRec states depend on the thread count).
        assert [{**n, "similarity": 0} for n in found] == [{**n, "similarity": 0} for n in expected]
        assert [n["similarity"] for n in found] == pytest.approx(
            [n["similarity"] for n in expected], abs=1e-5
        )
    again = index.build(kb.dataset, kb.sasrec)
    assert not again.rebuilt and again.entries == built["entries"]


def test_interrupted_build_is_detected_and_redone(kb, monkeypatch):
    index = CollaborativeIndex(kb.root / "interrupted", batch_size=4)
    original, calls = kb.sasrec.embed_histories, []

    def crash_on_second_batch(histories):
        calls.append(len(histories))
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill between two batches
        return original(histories)

    monkeypatch.setattr(kb.sasrec, "embed_histories", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        index.build(kb.dataset, kb.sasrec)
    monkeypatch.undo()

    name = collection_name(kb.dataset, kb.sasrec)
    partial = index.client.get_collection(name, embedding_function=None)
    assert partial.count() == 4 and partial.metadata["complete"] is False
    with pytest.raises(NotPreparedError, match="CollaborativeIndex.build"):
        CollaborativeRetriever(index, kb.dataset, kb.sasrec)
    report = index.build(kb.dataset, kb.sasrec)
    assert report.rebuilt and report.entries == len(kb_entries(kb.dataset)[0])
    assert index.client.get_collection(name, embedding_function=None).count() == report.entries


def test_server_url_parsing():
    assert parse_server_url("http://localhost:8000") == ("localhost", 8000, False)
    assert parse_server_url("https://chroma.example.org") == ("chroma.example.org", 443, True)
    assert parse_server_url("http://10.0.0.5") == ("10.0.0.5", 8000, False)
    with pytest.raises(ConfigError, match="`server_url`"):
        parse_server_url("localhost:8000")
    with pytest.raises(ConfigError, match="needs|give"):
        CollaborativeIndex()


# ----- the LLM tool ---------------------------------------------------------------------------


def test_tool_schema_invoke_and_argument_errors(kb, retriever):
    asked: list[list[str]] = []

    class Store:  # a `KeywordStore` that records what it is asked for
        def get_many(self, items: list[Item]) -> dict[str, list[str]]:
            asked.append([item.item_id for item in items])
            return {item.item_id: [f"kw-{item.item_id}"] for item in items}

        def put(self, item: Item, keywords: list[str], reward: float | None) -> None:
            raise AssertionError("the tool only reads")

    tool = make_similar_users_tool(retriever, kb.dataset, Store())
    assert tool.name == "similar_users" and tool.args_schema is SimilarUsersArgs
    schema = SimilarUsersArgs.model_json_schema()["properties"]
    assert schema["user_id"]["type"] == "string"
    assert (schema["k"]["minimum"], schema["k"]["maximum"]) == (1, 20)

    result = tool.invoke({"user_id": "u2", "k": 2})
    json.dumps(result)  # JSON-able
    expected = retriever.similar_users("u2", _visible(kb.dataset, "u2"), 2)
    assert [r["user_id"] for r in result] == [n["user_id"] for n in expected]
    for row in result:
        assert set(row) == {"user_id", "similarity", "next_item", "keywords"}
        assert row["keywords"] == [f"kw-{row['next_item']['item_id']}"]
    assert asked == [[n["next_item_id"] for n in expected]]

    unknown = tool.invoke({"user_id": "nobody", "k": 2})
    assert isinstance(unknown, str) and "`nobody`" in unknown
    too_many = tool.invoke({"user_id": "u2", "k": 21})
    assert isinstance(too_many, str) and "`k`" in too_many


# ----- the graph node -------------------------------------------------------------------------


class FakeSummarizer:
    name = "fake-summarizer"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def summarize(self, items, feedback):
        self.calls.append([item.item_id for item in items])
        return {item.item_id: ["fresh", item.title] for item in items}


class FakeKeywordStore:
    def __init__(self, stored: dict[str, list[str]]) -> None:
        self.stored = dict(stored)
        self.puts: list[tuple[str, list[str], float | None]] = []

    def get_many(self, items):
        return {i.item_id: self.stored[i.item_id] for i in items if i.item_id in self.stored}

    def put(self, item, keywords, reward):
        self.puts.append((item.item_id, keywords, reward))
        self.stored[item.item_id] = keywords


def _context(kb, retriever, store, summarizer, k=3) -> GraphContext:
    return GraphContext(
        dataset=kb.dataset,
        summarizer=summarizer,
        critic=None,
        keywords=store,
        retriever=retriever,
        scorer=None,  # type: ignore[arg-type]  # not used by this node
        settings=GraphSettings(k_similar=k),
    )


def _state(kb, user: str) -> dict:
    return {"user_id": user, "candidates": [], "top_k": 5, "history": _visible(kb.dataset, user)}


def test_node_fills_keywords_from_store_then_summarizer(kb, retriever):
    expected = retriever.similar_users("u3", _visible(kb.dataset, "u3"), 3)
    cached = expected[0]["next_item_id"]
    store, summarizer = FakeKeywordStore({cached: ["stored"]}), FakeSummarizer()
    ctx = _context(kb, retriever, store, summarizer)

    update = retrieve(_state(kb, "u3"), Runtime(context=ctx))
    assert set(update) <= set(get_type_hints(RecommendationState))
    found = update["similar_users"]
    assert [n["user_id"] for n in found] == [n["user_id"] for n in expected]
    assert found[0]["keywords"] == ["stored"]
    others = [n["next_item_id"] for n in expected if n["next_item_id"] != cached]
    missing = list(dict.fromkeys(others))
    assert summarizer.calls == ([missing] if missing else [])
    assert [(item, reward) for item, _, reward in store.puts] == [(m, None) for m in missing]
    (record,) = update["trace"]
    assert record["node"] == "retrieve" and record["inputs"] == {"user_id": "u3", "k": 3}
    assert record["outputs"]["user_ids"] == [n["user_id"] for n in found]
    assert record["outputs"]["next_items"] == [n["next_item_id"] for n in found]

    again = retrieve(_state(kb, "u3"), Runtime(context=ctx))  # now every item is stored
    assert len(summarizer.calls) == len([missing] if missing else [])
    assert again["similar_users"] == found


def test_node_off_without_retriever_or_k_and_inside_a_graph(kb, retriever):
    store, summarizer = FakeKeywordStore({}), FakeSummarizer()
    for ctx in (
        _context(kb, None, store, summarizer),
        _context(kb, retriever, store, summarizer, k=0),
    ):
        update = retrieve(_state(kb, "u0"), Runtime(context=ctx))
        assert update["similar_users"] == []
        assert update["trace"][0]["outputs"]["enabled"] is False
    assert summarizer.calls == []

    builder = StateGraph(RecommendationState, context_schema=GraphContext)
    builder.add_node("retrieve", retrieve)
    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", END)
    ctx = _context(kb, retriever, FakeKeywordStore({}), FakeSummarizer(), k=2)
    out = builder.compile().invoke(_state(kb, "u4"), context=ctx)
    assert len(out["similar_users"]) == 2 and out["trace"][0]["hash"]
