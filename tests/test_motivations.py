"""User motivations (after LMMRec) and the chat's questions to the recommender: "why",
"what do you think I like", "not into horror any more", "hidden gems"."""

from __future__ import annotations

import pytest
from chat_fakes import make_chat_service, write_genre_catalog

from mmsrarec.chat.asks import read_asks
from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.nodes.context import DEBIAS
from mmsrarec.recommenders.itemknn import ItemKNNRecommender
from mmsrarec.scoring.motivations import MotivationModel, match, n_motivations, recency_weights

HORROR = ["f1", "f7", "f13", "f19", "f25"]  # GENRE_CYCLE[1]: Horror
DRAMA = ["f2", "f8", "f14", "f20", "f26"]  # GENRE_CYCLE[2]: Drama


@pytest.fixture
def genre_dataset(tmp_path):
    source = write_genre_catalog(tmp_path / "src")
    folder, _ = prepare_dataset(source, tmp_path / "data", negatives=5)
    return load_dataset(folder)


def test_recency_weights_and_how_many_motivations():
    assert recency_weights(3).tolist() == pytest.approx([0.5 ** (2 / 20), 0.5 ** (1 / 20), 1])
    assert [n_motivations(n) for n in (1, 2, 5, 35, 80, 500)] == [1, 2, 3, 3, 6, 6]


def test_a_profile_groups_the_history_by_what_it_shares(genre_dataset):
    model = MotivationModel(genre_dataset, {})
    history = [i for pair in zip(HORROR, DRAMA, strict=True) for i in pair]
    profile = model.profile(history)
    assert 1 <= len(profile) <= 3 and sum(m["weight"] for m in profile) == pytest.approx(1.0)
    named = {word for m in profile for word in m["keywords"]}
    assert {"horror", "drama"} <= named
    for motivation in profile:  # every supporting item carries one of the motivation's words
        texts = [genre_dataset.by_id(i).text.lower() for i in motivation["item_ids"]]
        assert all(any(w in text for w in motivation["keywords"]) for text in texts)
    space = model.space
    horror_item = genre_dataset.index_of("f31")  # an unseen horror film
    comedy_item = genre_dataset.index_of("f4")  # Comedy: in neither group
    assert match(profile, space, horror_item) > match(profile, space, comedy_item)


def test_a_correction_drops_the_motivation_and_its_items(genre_dataset):
    model = MotivationModel(genre_dataset, {})
    history = [i for pair in zip(HORROR, DRAMA, strict=True) for i in pair]
    profile, kept = model.corrected(history, ["horror"])
    assert all("horror" not in m["keywords"] for m in profile)
    assert not set(kept) & set(HORROR) and set(kept) == set(DRAMA)


def test_stored_keywords_replace_the_item_text(genre_dataset):
    stored = {i: ["haunted house", "ghosts"] for i in HORROR}
    model = MotivationModel(genre_dataset, stored)
    assert model.space.sources[genre_dataset.index_of("f1")] == "keywords"
    assert model.space.sources[genre_dataset.index_of("f2")] == "text"
    (top,) = model.profile(HORROR)[:1]
    assert set(top["keywords"]) <= {"haunted house", "ghosts"}


@pytest.mark.parametrize(
    ("text", "why", "profile", "debias", "not_into"),
    [
        ("why?", 0, False, None, []),
        ("why the second one", 2, False, None, []),
        ("What do you think I like?", None, True, None, []),
        ("something less mainstream please", None, False, True, []),
        ("hidden gems", None, False, True, []),
        ("more popular ones", None, False, False, []),
        ("I'm not into horror any more", None, False, None, ["horror"]),
        ("no longer into sci-fi, give me drama", None, False, None, ["sci-fi"]),
        ("loved Alien", None, False, None, []),
    ],
)
def test_read_asks(text, why, profile, debias, not_into):
    asks = read_asks(text)
    assert (asks.why, asks.profile, asks.debias, asks.not_into) == (why, profile, debias, not_into)


@pytest.fixture
def chat(genre_dataset, tiny_encoder):
    service = make_chat_service(genre_dataset, tiny_encoder)
    ranker = ItemKNNRecommender()
    ranker.fit(genre_dataset, 0)
    service.context.graph.ranker = ranker  # a catalog ranker: evidence by re-scoring
    return service


def records(chat, thread, node: str) -> list[dict]:
    return [r for r in chat.trace(thread) if r["node"] == node]


def test_the_chat_shows_corrects_and_explains(chat):
    thread = chat.new_thread()
    first = chat.chat(thread, "loved Film 1 and Film 2")
    assert first["recommendations"]
    profile = chat.chat(thread, "what do you think I like?")["reply"]
    assert "horror" in profile.lower() and "drama" in profile.lower()
    assert "Film 1" in profile and "not into X any more" in profile

    corrected = chat.chat(thread, "I'm not into horror any more")
    assert corrected["intent"]["not_into"] == ["horror"]
    assert records(chat, thread, "rank")[-1]["outputs"]["history"] == ["f2"]  # f1 left
    for rec in corrected["recommendations"]:
        assert "Horror" not in chat.context.facts(rec["item_id"]).genres
    after = chat.chat(thread, "what do I like?")["reply"]
    assert "(no longer: horror)" in after and "Film 1 " not in after.split("(no longer")[0]

    why = chat.chat(thread, "why the first one?")
    pick = corrected["recommendations"][0]
    assert why["reply"].startswith(pick["title"] + ":")
    assert ("without Film 2" in why["reply"]) == (pick["cited_history"] == ["f2"])
    assert why["recommendations"] == corrected["recommendations"]  # kept for the next why


def test_hidden_gems_turn_the_debiasing_on(chat):
    thread = chat.new_thread()
    chat.chat(thread, "loved Film 2")
    gems = chat.chat(thread, "hidden gems please")
    assert gems["intent"]["debias"] == chat.context.settings.less_mainstream
    (last,) = records(chat, thread, "recommend")[-1:]
    assert last["inputs"]["debias"] == chat.context.settings.less_mainstream
    for rec in gems["recommendations"]:  # the chat's score is its fused orders' sum
        assert sum(rec["contributions"].values()) == pytest.approx(rec["score"])
    back = chat.chat(thread, "more popular ones")
    assert back["intent"]["debias"] is None
    assert records(chat, thread, "recommend")[-1]["inputs"]["debias"] == DEBIAS  # the default
