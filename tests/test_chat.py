"""The chat graph: text -> catalog items, clarifying questions, memory per thread, traces."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import chromadb
import pytest
from chat_fakes import make_chat_context, make_chat_service
from chromadb.config import Settings as ChromaSettings
from langgraph.graph.state import CompiledStateGraph

from mmsrarec.chat.catalog import CatalogIndex
from mmsrarec.chat.graph import build_chat_graph, split_runs
from mmsrarec.chat.parse import (
    TitleIndex,
    avoided,
    resolve_choice,
    title_aliases,
)
from mmsrarec.chat.state import ChatState
from mmsrarec.data import Item, load_dataset, prepare_dataset
from mmsrarec.models import ChromaEmbedding
from mmsrarec.trace import verify_trace

ROOT = Path(__file__).resolve().parents[1]
DECLARED = ChatState.__required_keys__ | ChatState.__optional_keys__


def items(*titles: str) -> list[Item]:
    return [Item(f"i{n}", title, f"{title}. Genres: Drama.") for n, title in enumerate(titles)]


def test_title_aliases_drop_year_and_move_article():
    assert title_aliases("Godfather, The (1972)") == ["the godfather", "godfather"]
    assert title_aliases("Star Wars (1977)") == ["star wars"]


def test_mentions_longest_first_and_capitalised_single_words():
    titles = TitleIndex.from_items(items("Star Wars (1977)", "Alien (1979)", "Heat (1995)"))
    found = titles.mentions("loved Alien and star wars, want heat")
    assert [(m.phrase, m.item_ids) for m in found] == [("Alien", ("i1",)), ("star wars", ("i0",))]


def test_remakes_are_one_ambiguous_mention():
    titles = TitleIndex.from_items(items("Sabrina (1954)", "Sabrina (1995)"))
    (mention,) = titles.mentions("I liked Sabrina")
    assert mention.item_ids == ("i0", "i1")


def test_avoided_matches_word_stems():
    assert avoided("A gore fest. Genres: Horror.", ["gory"])
    assert not avoided("A quiet drama.", ["gory"])


@pytest.mark.parametrize(
    ("answer", "expected"), [("2", "i1"), ("the second", "i1"), ("the 1954 one", "i0"), ("?", None)]
)
def test_resolve_choice(answer, expected):
    options = items("Sabrina (1954)", "Sabrina (1995)")
    chosen = resolve_choice(answer, options)
    assert (chosen.item_id if chosen else None) == expected


@pytest.fixture
def service(tiny_dataset, tiny_encoder):
    return make_chat_service(tiny_dataset, tiny_encoder)


def test_vague_message_asks_and_still_recommends_popular_items(service):
    thread = service.new_thread()
    out = service.chat(thread, "recommend me something good")
    assert out["question"] == "" and "Tell me a film" in out["reply"]
    assert "Meanwhile, popular picks:" in out["reply"] and out["recommendations"]
    popularity = [service.context.facts(r["item_id"]).popularity for r in out["recommendations"]]
    assert popularity == sorted(popularity, reverse=True)


def test_named_titles_give_grounded_recommendations(service):
    thread = service.new_thread()
    out = service.chat(thread, "loved Movie 3 and Movie 12")
    assert out["liked"] == ["m3", "m12"]
    assert 1 <= len(out["recommendations"]) <= 3
    ids = {r["item_id"] for r in out["recommendations"]}
    assert not ids & {"m3", "m12"}  # never what the user named
    assert all(r["evidence"] for r in out["recommendations"])
    assert "Movie 3" in out["reply"] and out["recommendations"][0]["title"] in out["reply"]


def test_memory_carries_over_turns_and_threads_are_separate(service):
    first, other = service.new_thread(), service.new_thread()
    one = service.chat(first, "loved Movie 3")
    two = service.chat(first, "also Movie 20")
    assert two["liked"] == ["m3", "m20"] and two["turn"] == 2
    shown = {r["item_id"] for r in one["recommendations"]}
    assert not shown & {r["item_id"] for r in two["recommendations"]}  # no repeats
    assert service.chat(other, "loved Movie 20")["liked"] == ["m20"]
    roles = [m["role"] for m in service.messages(first)]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_avoid_words_drop_candidates(service, tiny_dataset):
    thread = service.new_thread()
    out = service.chat(thread, "loved Movie 3 and Movie 12 but nothing horror")
    assert out["recommendations"]
    for rec in out["recommendations"]:
        assert "horror" not in tiny_dataset.item(tiny_dataset.index_of(rec["item_id"])).text
    final = next(r for r in service.trace(thread) if r["node"] == "final_filter")
    assert "avoided word" in final["outputs"]["dropped"].values()


def test_trace_holds_the_whole_path_and_verifies(service):
    thread = service.new_thread()
    service.chat(thread, "hello")
    service.chat(thread, "loved Movie 3")
    records = service.trace(thread)
    assert verify_trace(records) is None
    paths = [[r["node"] for r in run] for run in split_runs(records)]
    # "hello" asks for a taste and shows popular picks: the tools run, not `clarify`
    assert paths[0] == ["understand", "hard_filter", "soft_search", "rank", "final_filter", "reply"]
    assert paths[1][:3] == ["understand", "hard_filter", "soft_search"]
    assert paths[1][3] == "rank" and paths[1][-2:] == ["final_filter", "reply"]
    assert {"load_user", "summarize", "critique", "retrieve", "recommend"} <= set(paths[1])


@pytest.fixture
def remake_dataset(tmp_path, tiny_source):
    rows = [json.loads(line) for line in (tiny_source / "catalog.jsonl").read_text().splitlines()]
    rows[4]["title"], rows[5]["title"] = "Sabrina (1954)", "Sabrina (1995)"
    (tiny_source / "catalog.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    folder, _ = prepare_dataset(tiny_source, tmp_path / "remakes", negatives=5)
    return load_dataset(folder)


def test_ambiguous_title_asks_then_uses_the_answer(remake_dataset, tiny_encoder):
    service = make_chat_service(remake_dataset, tiny_encoder)
    thread = service.new_thread()
    asked = service.chat(thread, "I loved Sabrina")
    assert "1. Sabrina (1954)" in asked["question"] and asked["recommendations"] == []
    answered = service.chat(thread, "the 1995 one")
    assert answered["liked"] == ["m6"] and answered["recommendations"]


def test_nodes_return_declared_keys_only(service):
    thread = service.new_thread()
    service.chat(thread, "loved Movie 3")
    values = service.graph.get_state({"configurable": {"thread_id": thread}}).values
    assert set(values) <= DECLARED


def test_catalog_search_finds_an_item_by_its_document(tiny_dataset, tiny_encoder):
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    embedding = ChromaEmbedding(tiny_encoder)
    index = CatalogIndex.build(client, tiny_dataset, {"m7": ["laser", "moon"]}, embedding)
    item = tiny_dataset.item(7)
    top = index.search(f"{item.text} Keywords: laser, moon.", 3)
    assert top[0]["item_id"] == "m7" and top[0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    again = CatalogIndex.build(client, tiny_dataset, {"m7": ["laser", "moon"]}, embedding)
    assert again.collection.id == index.collection.id
    # new keywords update the one collection in place: a handle opened before still answers
    changed = CatalogIndex.build(client, tiny_dataset, {"m7": ["laser"]}, embedding)
    assert changed.collection.id == index.collection.id
    assert index.collection.count() == tiny_dataset.n_items
    (stored,) = index.collection.get(ids=["m7"], include=["documents"])["documents"]
    assert stored.endswith("Keywords: laser.")
    assert index.search(f"{item.text} Keywords: laser.", 1)[0]["similarity"] == pytest.approx(
        1.0, abs=1e-3
    )


def test_context_for_a_graph_without_checkpointer(tiny_dataset, tiny_encoder):
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    context = make_chat_context(tiny_dataset, tiny_encoder, client)
    out = build_chat_graph().invoke({"message": "loved Movie 3"}, context=context)
    assert out["recommendations"]


def test_langgraph_json_points_at_a_chat_graph(tiny_dataset, tiny_encoder, monkeypatch):
    config = json.loads((ROOT / "langgraph.json").read_text())
    path, attr = config["graphs"]["chat"]["path"].split(":")
    module = importlib.import_module(path.removeprefix("./").removesuffix(".py").replace("/", "."))
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    monkeypatch.setattr(
        module, "_context", lambda served: make_chat_context(tiny_dataset, tiny_encoder, client)
    )
    graph = getattr(module, attr)()
    assert isinstance(graph, CompiledStateGraph)
    assert {"understand", "clarify", "hard_filter", "relax", "rank", "reply"} <= set(
        graph.get_graph().nodes
    )
    assert graph.invoke({"message": "loved Movie 3"})["recommendations"]  # no context given
