"""Structured intent: the rule-based reader (negation, decades, dislikes), the intent's
update rules, the SQL hard filter and its relaxation, scripted multi-turn conversations and
the reply format. The conversations run the real chat and recommendation graphs over a tiny
catalog in ML-100K's format, with scripted parts in place of the LLM."""

from __future__ import annotations

import re

import pytest
from chat_fakes import make_chat_service, write_genre_catalog

from mmsrarec.chat.intent import Intent, intent_line, update_intent
from mmsrarec.chat.parse import TitleIndex
from mmsrarec.chat.rules import parse_message
from mmsrarec.chat.sqlcatalog import CatalogDB, Conditions, genres_of, relax
from mmsrarec.chat.years import YearSpan, combine
from mmsrarec.data import Item, load_dataset, prepare_dataset

GENRES = frozenset(
    [
        "Action",
        "Adventure",
        "Comedy",
        "Crime",
        "Drama",
        "Horror",
        "Romance",
        "Thriller",
        "War",
        "Children's",
        "Sci-Fi",
    ]
)
TITLES = TitleIndex.from_items(
    [
        Item("t", "Titanic (1997)", ""),
        Item("f", "Fargo (1996)", ""),
        Item("s", "Star Wars (1977)", ""),
        Item("a", "Alien (1979)", ""),
    ]
)


def parse(text: str):
    return parse_message(text, TITLES, GENRES, frozenset({"tense", "dark", "space"}))


@pytest.mark.parametrize(
    ("text", "wanted", "avoided"),
    [
        ("not a drama", [], ["Drama"]),
        ("I don't like comedies, I want a thriller", ["Thriller"], ["Comedy"]),
        ("no horror and no war, but a comedy", ["Comedy"], ["Horror", "War"]),
        ("a romantic comedy", ["Romance", "Comedy"], []),
        (
            "something funny without violence",
            ["Comedy"],
            ["Action", "Crime", "Horror", "War", "Thriller"],
        ),  # noqa: E501
        ("I hate horror but love a good thriller", ["Thriller"], ["Horror"]),
    ],
)
def test_negation_scope(text, wanted, avoided):
    parsed = parse(text)
    assert parsed.genres == wanted and parsed.avoid_genres == avoided


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("a comedy from the 90s", (1990, 1999)),
        ("something from the 1980s", (1980, 1989)),
        ("early 80s please", (1980, 1983)),
        ("late nineties", (1996, 1999)),
        ("between 1970 and 1975", (1970, 1975)),
        ("1960-1965 westerns", (1960, 1965)),
        ("before 1960", (None, 1959)),
        ("after 1990", (1991, None)),
        ("from 1994", (1994, 1994)),
        ("loved Alien (1979)", (None, None)),  # a title's year is not a condition
    ],
)
def test_decades_and_year_ranges(text, years):
    within = combine(parse(text).years).within or YearSpan()
    assert (within.low, within.high) == years


def test_liked_disliked_and_seen_titles():
    hated = parse("I hated Titanic")
    assert [m.item_ids for m in hated.disliked] == [("t",)] and not hated.liked
    mixed = parse("Titanic was boring, Fargo was great")
    assert [m.phrase for m in mixed.disliked] == ["Titanic"]
    assert [m.phrase for m in mixed.liked] == ["Fargo"]
    assert [m.phrase for m in parse("I have seen Fargo already").seen] == ["Fargo"]
    assert [m.phrase for m in parse("didn't like Titanic").disliked] == ["Titanic"]


def test_words_inside_titles_are_not_conditions():
    parsed = parse("loved Star Wars and Alien, want something tense but not dark")
    assert not parsed.genres and not parsed.avoid_genres  # "wars" is not War
    assert parsed.wishes == ["tense"] and parsed.avoid_wishes == ["dark"]


def test_refinements_and_gibberish():
    assert parse("Something older").refine == ["older"]
    assert parse("more like the second one").picks == {"like": [2]}
    assert parse("not the third one").picks == {"reject": [3]}
    assert parse("I've seen it").seen_last == "first"
    assert parse("seen them all").seen_last == "all"
    assert "startover" in parse("let's start over").refine
    nonsense = parse("asdf qwzx")
    assert not nonsense.understood() and nonsense.unknown == ["asdf", "qwzx"]


def step(intent: Intent, text: str, years: dict[str, int] | None = None, **resolved) -> Intent:
    years = years or {}
    return update_intent(intent, parse(text), resolved, years.get, (1920, 1998))


def test_intent_refines_instead_of_replacing():
    intent = step(Intent(), "a romantic comedy from the 90s")
    intent = step(intent, "not too dark")
    assert intent.genres == ["Romance", "Comedy"] and intent.avoid_wishes == ["dark"]
    older = step(intent, "something older")
    assert (older.year_min, older.year_max) == (1980, 1989) and older.genres == intent.genres
    newer = step(intent, "newer")
    assert (newer.year_min, newer.year_max) == (1998, 1998)  # clipped to the catalog's span
    instead = step(intent, "actually a thriller instead")
    assert instead.genres == ["Thriller"]
    assert step(intent, "no comedy").genres == ["Romance"]


def test_intent_picks_and_start_over():
    intent = Intent(liked=["a"], last_shown=["x", "y", "z"], shown=["x", "y", "z"])
    liked = step(intent, "more like the second one")
    assert liked.liked == ["a", "y"]
    seen = step(liked, "I've seen it")
    assert seen.seen == ["x"]
    older = step(Intent(last_shown=["x", "y"]), "older", years={"x": 1990, "y": 1985})
    assert (older.year_min, older.year_max) == (None, 1984)
    moved = step(Intent(liked=["t"]), "I hated Titanic", disliked=["t"])
    assert moved.disliked == ["t"] and moved.liked == []
    fresh = step(seen, "start over")
    assert fresh.seen == ["x"] and not fresh.liked and not fresh.has_request()


def test_intent_line():
    intent = Intent(
        genres=["Romance", "Comedy"], year_min=1990, year_max=1999, avoid_genres=["Horror"]
    )
    line = intent_line(intent, str)
    assert line == "Looking for: romance + comedy, 1990–1999; not: horror"


def test_sql_filter_matches_the_item_text(ml100k):
    db = CatalogDB.build(ml100k)
    wanted = Conditions(
        genres=("Romance", "Comedy"), avoid_genres=("Drama",), year_min=1990, year_max=1999
    )  # noqa: E501
    found, sql = db.query(wanted)
    expected = {
        item.item_id
        for item in ml100k.items
        if {"Romance", "Comedy"} <= set(genres_of(item))
        and "Drama" not in genres_of(item)
        and re.search(r"\((199\d)\)$", item.title)
    }
    assert set(found) == expected and len(found) > 20 and "item_genres" in sql
    popularity = [db.facts(i)[2] for i in found]
    assert popularity == sorted(popularity, reverse=True)  # most popular first
    assert db.span == (1922, 1998)


def test_relaxation_drops_years_first_then_the_last_genre():
    conditions = Conditions(
        genres=("Horror", "Comedy"), avoid_genres=("War",), year_min=1950, year_max=1959
    )  # noqa: E501
    first, dropped = relax(conditions)
    assert dropped == "years 1950–1959" and first.genres == ("Horror", "Comedy")
    second, dropped = relax(first)
    assert dropped == "genre Comedy" and second.genres == ("Horror",)
    third, _ = relax(second)
    assert relax(third) is None and third.avoid_genres == ("War",)  # a "no" is never relaxed


@pytest.fixture
def genre_dataset(tmp_path):
    folder, _ = prepare_dataset(
        write_genre_catalog(tmp_path / "src"), tmp_path / "data", negatives=5
    )  # noqa: E501
    return load_dataset(folder)


@pytest.fixture
def chat(genre_dataset, tiny_encoder):
    return make_chat_service(genre_dataset, tiny_encoder)


def facts(chat, item_id: str):
    return chat.context.facts(item_id)


def test_conversation_refines_over_five_turns(chat):
    thread = chat.new_thread()
    one = chat.chat(thread, "a romantic comedy from the 90s")
    assert one["intent_line"].startswith("Looking for: romance + comedy, 1990–1999")
    for rec in one["recommendations"]:
        assert {"Romance", "Comedy"} <= set(facts(chat, rec["item_id"]).genres)
        assert 1990 <= facts(chat, rec["item_id"]).year <= 1999 or one["relaxed"]
    two = chat.chat(thread, "something older")
    assert (two["intent"]["year_min"], two["intent"]["year_max"]) == (1980, 1989)
    assert two["intent"]["genres"] == ["Romance", "Comedy"]  # refined, not replaced
    shown = [r["item_id"] for r in one["recommendations"] + two["recommendations"]]
    assert len(shown) == len(set(shown))  # nothing shown twice
    second = two["recommendations"][1]["item_id"]
    three = chat.chat(thread, "more like the second one")
    assert three["liked"] == [second] and three["recommendations"]
    first = three["recommendations"][0]["item_id"]
    four = chat.chat(thread, "I've seen it")
    assert first in four["intent"]["seen"]
    assert first not in {r["item_id"] for r in four["recommendations"]}
    five = chat.chat(thread, "start over")
    assert five["reply"].splitlines()[1].startswith("Starting over")
    assert "popular picks" in five["reply"] and five["recommendations"]  # never empty
    assert five["intent"]["seen"] == four["intent"]["seen"] and not five["intent"]["genres"]


def test_dislikes_are_never_recommended_and_nonsense_asks(chat):
    thread = chat.new_thread()
    out = chat.chat(thread, "loved Film 4 and Film 10, hated Film 16")
    assert out["liked"] == ["f4", "f10"] and out["intent"]["disliked"] == ["f16"]
    banned = {"f4", "f10", "f16"}
    assert out["recommendations"] and not banned & {r["item_id"] for r in out["recommendations"]}
    nonsense = chat.chat(thread, "qwzx blorp")
    assert "did not catch a request in 'qwzx blorp'" in nonsense["reply"]
    assert "picks from the titles you liked" in nonsense["reply"]
    assert nonsense["recommendations"] and nonsense["liked"] == ["f4", "f10"]
    only_dislike = chat.chat(chat.new_thread(), "I hated Film 16")
    assert only_dislike["reply"].splitlines()[1].startswith("Noted")
    assert "popular picks" in only_dislike["reply"]
    assert only_dislike["recommendations"]
    assert "f16" not in {r["item_id"] for r in only_dislike["recommendations"]}


def test_relaxation_is_named_in_the_reply(chat):
    thread = chat.new_thread()
    out = chat.chat(thread, "a horror comedy from the 1950s")
    assert out["relaxed"][0] == "years 1950–1959"
    assert "Too few matches, so I dropped: years 1950–1959" in out["reply"]
    path = [r["node"] for r in chat.trace(thread)]
    assert path.count("hard_filter") == len(out["relaxed"]) + 1 and "relax" in path


def test_violence_is_a_hard_exclusion(chat):
    out = chat.chat(chat.new_thread(), "something funny without violence")
    assert out["recommendations"]
    for rec in out["recommendations"]:
        genres = set(facts(chat, rec["item_id"]).genres)
        assert "Comedy" in genres and not genres & {"Action", "Thriller", "Horror"}


def test_reply_lists_each_pick_once_with_a_reason(chat):
    out = chat.chat(chat.new_thread(), "a comedy from the 60s")
    lines = out["reply"].splitlines()
    assert lines[0] == out["intent_line"] == "Looking for: comedy, 1960–1969"
    for n, rec in enumerate(out["recommendations"], start=1):
        assert out["reply"].count(rec["title"]) == 1
        assert f"{n}. {rec['title']} — comedy" in out["reply"]
        assert str(facts(chat, rec["item_id"]).year) in rec["evidence"]


def test_duplicate_entries_of_one_film_are_not_asked_about(chat):
    thread = chat.new_thread()
    out = chat.chat(thread, "I loved Twin")
    assert out["question"] == "" and out["liked"] == ["d1", "d2"]
    asked = chat.chat(thread, "and Sabrina")
    assert "1. Sabrina (1954)" in asked["question"] and "2. Sabrina (1995)" in asked["question"]
    answered = chat.chat(thread, "the 1995 one")
    assert answered["liked"] == ["d1", "d2", "s2"]


def test_the_intent_loads_back_from_the_checkpointer_without_warnings(chat, caplog):
    thread = chat.new_thread()
    chat.chat(thread, "a romantic comedy from the 90s")
    chat.chat(thread, "not too dark")
    assert chat.graph.get_state({"configurable": {"thread_id": thread}}).values["intent"].genres
    assert chat.trace(thread)
    assert "unregistered type" not in caplog.text


def test_relaxation_order_mood_then_liked_genres_then_years_never_a_no():
    conditions = Conditions(
        genres=("Comedy",),
        mood_genres=(("creepy", "Horror"),),
        any_genres=("Action", "Sci-Fi"),
        avoid_genres=("War",),
        year_min=1950,
        year_max=1959,
        avoid_years=((1955, 1956),),
    )
    dropped = []
    while (step := relax(conditions)) is not None:
        conditions, what = step
        dropped.append(what)
    assert dropped == [
        "genre Horror (from 'creepy')",
        "the liked titles' genres",
        "years 1950–1959",
        "genre Comedy",
    ]
    assert conditions.avoid_genres == ("War",) and conditions.avoid_years == ((1955, 1956),)


def test_sql_filter_leaves_out_avoided_years_and_needs_one_liked_genre(ml100k):
    db = CatalogDB.build(ml100k)
    found, _ = db.query(
        Conditions(any_genres=("Western", "Film-Noir"), avoid_years=((1940, 1969),))
    )
    assert len(found) > 20
    for item_id in found:
        year, genres, _ = db.facts(item_id)
        assert {"Western", "Film-Noir"} & set(genres) and not 1940 <= year <= 1969
