"""The chat's reader against the request grammar (`request_grammar.py`): property tests over
the development families on ML-100K's real titles, genres and years (the measurement families
are only run by `benchmarks/conversation_families.py`, never read here), and multi-turn
scripts where a later hard condition narrows the request and never drops an earlier one."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from request_grammar import FAMILIES, Catalog, Want, draw

from mmsrarec.chat import lexicon
from mmsrarec.chat.intent import Intent, update_intent
from mmsrarec.chat.parse import SeriesIndex, TitleIndex, year_of
from mmsrarec.chat.rules import negated_at, parse_message
from mmsrarec.chat.spelling import correct, edit_distance
from mmsrarec.chat.sqlcatalog import genres_of
from mmsrarec.chat.years import YearCondition, YearSpan, combine, digits, read_years

# Mood families need the real sentence encoder: the benchmark runs them.
RULE_FAMILIES = sorted(f for f, (split, _) in FAMILIES.items() if split == "dev" and f != "mood")


class Reader:
    """The chat's pure reader over a catalog, turn by turn (no graph, no model)."""

    def __init__(self, items) -> None:
        self.items = items
        self.titles = TitleIndex.from_items(items)
        self.series = SeriesIndex.from_items(items, lexicon.SERIES)
        self.genres = frozenset(g for item in items for g in genres_of(item))
        self.years = {item.item_id: year_of(item.title) for item in items}
        rows = [(i.title, _int(year_of(i.title)), genres_of(i)) for i in items]
        self.catalog = Catalog.from_rows(rows)
        self.ids_of: dict[str, set[str]] = {}
        for item in items:
            self.ids_of.setdefault(item.title, set()).add(item.item_id)

    def turn(self, intent: Intent, text: str) -> Intent:
        parsed = parse_message(text, self.titles, self.genres, frozenset())
        resolved = {
            kind: [i for m in getattr(parsed, kind) for i in m.item_ids]
            for kind in ("liked", "disliked", "seen")
        }
        return update_intent(
            intent,
            parsed,
            resolved,
            lambda i: _int(self.years.get(i)),
            self.catalog.span,
            series_of=self.series.of,
        )

    def ids(self, titles) -> set[str]:
        return {i for t in titles for i in self.ids_of[t]}

    def read(self, intent: Intent) -> dict:
        """`intent` in the construction's terms."""
        return {
            "genres": set(intent.genres),
            "avoid": set(intent.avoid_genres),
            "years": intent.years().allowed(self.catalog.span),
            "liked": set(intent.liked),
            "disliked": set(intent.disliked),
            "series": set(intent.series),
        }

    def expected(self, want: Want) -> dict:
        return {
            "genres": set(want.genres),
            "avoid": set(want.avoid),
            "years": set(want.allowed_years(self.catalog.span)),
            "liked": self.ids(want.liked),
            "disliked": self.ids(want.disliked),
            "series": self.ids(want.series),
        }


def _int(year: str | None) -> int | None:
    return int(year) if year else None


@pytest.fixture(scope="module")
def reader(ml100k):
    return Reader(ml100k.items)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(RULE_FAMILIES), seed=st.integers(0, 2**32 - 1))
def test_parsed_intent_equals_the_construction(reader, family, seed):
    case = draw(family, random.Random(seed), reader.catalog)
    intent = Intent()
    for turn in case.turns:
        intent = reader.turn(intent, turn.text)
        assert reader.read(intent) == reader.expected(turn.want), turn.text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(RULE_FAMILIES), seed=st.integers(0, 2**32 - 1))
def test_negation_never_flips_inclusion_and_exclusion(reader, family, seed):
    case = draw(family, random.Random(seed), reader.catalog)
    intent = Intent()
    for turn in case.turns:
        intent = reader.turn(intent, turn.text)
        want = turn.want
        assert not set(intent.genres) & want.avoid, turn.text  # an exclusion read as wanted
        assert not set(intent.avoid_genres) & want.genres, turn.text  # and the reverse
        allowed = want.allowed_years(reader.catalog.span)
        if want.years or want.avoid_years:  # no wanted year is excluded, no excluded one kept
            assert allowed & intent.years().allowed(reader.catalog.span), turn.text
        for low, high in intent.avoid_years:
            assert not set(range(low, high + 1)) & allowed, turn.text


def test_typos_are_corrected_with_a_confidence_and_real_words_are_not():
    targets = {"horror": "Horror", "comedy": "Comedy", "drama": "Drama", "dramas": "Drama"}
    fix = correct("horor", targets, known=frozenset())
    assert (fix.target, fix.confidence) == ("horror", round(1 - 1 / 6, 3))
    assert correct("cmoedy", targets, known=frozenset()).target == "comedy"  # a swap
    assert correct("drmas", targets, known=frozenset()).target in ("drama", "dramas")
    assert correct("dream", targets, known=frozenset({"dream"})) is None  # a real word
    assert correct("war", {"war": "War"}, known=frozenset()) is None  # too short to guess
    assert correct("comet", targets, known=frozenset()) is None  # 2 edits from "comedy"
    assert edit_distance("thriller", "thirller", 2) == 1 and edit_distance("ab", "xyz", 1) == 2


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("nothing before 1980", {"within": (1980, None)}),
        ("nothing after 1990", {"within": (None, 1990)}),
        ("not from the 80s", {"avoid": [(1980, 1989)]}),
        ("the 50s or the 80s", {"within": (1950, 1989), "avoid": [(1960, 1979)]}),
        ("the seventies or eighties", {"within": (1970, 1989)}),
        ("before nineteen eighty-five", {"within": (None, 1984)}),
        ("the nineteen-sixties", {"within": (1960, 1969)}),
        ("mid-sixties", {"within": (1963, 1966)}),
        ("after 1970 but before 1980", {"within": (1971, 1979)}),
    ],
)
def test_year_phrases_are_typed_intervals_with_a_polarity(text, years):
    conditions, _ = read_years(digits(text), negated_at)
    result = combine(conditions)
    within = result.within or YearSpan()
    assert (within.low, within.high) == years.get("within", (None, None))
    assert [(s.low, s.high) for s in result.avoid] == years.get("avoid", [])
    assert all(isinstance(c, YearCondition) for c in conditions)


def test_the_readme_example_reads_tense_and_gory_as_moods_not_violence(reader):
    parsed = parse_message(
        "loved Alien and Star Wars, want something tense but not gory",
        reader.titles,
        reader.genres,
        frozenset(),
    )
    assert [m.phrase for m in parsed.liked] == ["Alien", "Star Wars"]
    assert not parsed.avoid_genres and not parsed.genres  # "not gory" excludes no genre list
    assert parsed.mood_words() == (["tense"], ["gory"])  # left for the mood map


def test_not_its_sequels_excludes_the_series(reader):
    intent = reader.turn(Intent(), "like Alien but not its sequels")
    titles = {reader.items[int(i) - 1].title for i in intent.series}
    assert titles == {"Aliens (1986)", "Alien 3 (1992)", "Alien: Resurrection (1997)"}
    assert [reader.items[int(i) - 1].title for i in intent.liked] == ["Alien (1979)"]
    named = reader.turn(Intent(), "like Die Hard but not Die Hard 2")
    assert [reader.items[int(i) - 1].title for i in named.disliked] == ["Die Hard 2 (1990)"]
    assert not named.series


SCRIPT = [
    "a comedy",
    "from the 90s",
    "no romance",
    "the older the better, before 1995",
    "I hate dramas",
]


def test_a_later_hard_condition_narrows_and_never_drops_an_earlier_one(reader):
    intent, allowed = Intent(), reader.catalog.span
    years = set(range(allowed[0], allowed[1] + 1))
    for text in SCRIPT:
        before = intent
        intent = reader.turn(intent, text)
        now = intent.years().allowed(reader.catalog.span)
        assert set(before.genres) <= set(intent.genres) and now <= years, text
        assert set(before.avoid_genres) <= set(intent.avoid_genres), text
        years = now
    assert intent.genres == ["Comedy"] and intent.avoid_genres == ["Romance", "Drama"]
    assert (intent.year_min, intent.year_max) == (1990, 1994) and intent.order == "oldest"
    fresh = reader.turn(intent, "forget that, let's start again")
    assert not fresh.has_request() and not fresh.avoid_genres
    assert reader.turn(fresh, "a western").genres == ["Western"]


@pytest.fixture
def genre_chat(tmp_path, tiny_encoder):
    from chat_fakes import make_chat_service, write_genre_catalog

    from mmsrarec.data import load_dataset, prepare_dataset

    folder, _ = prepare_dataset(
        write_genre_catalog(tmp_path / "src"), tmp_path / "data", negatives=5
    )
    return make_chat_service(load_dataset(folder), tiny_encoder)


def test_multi_turn_script_through_the_chat_keeps_every_condition(genre_chat):
    chat = genre_chat
    thread = chat.new_thread()
    for text in ("a comedy", "nothing before 1960", "not from the 80s", "anything but romance"):
        out = chat.chat(thread, text)
        assert out["recommendations"], text  # never empty: shown items come back if needed
    intent = out["intent"]
    assert intent["genres"] == ["Comedy"] and intent["avoid_genres"] == ["Romance"]
    assert intent["year_min"] == 1960 and intent["avoid_years"] == [(1980, 1989)]
    for rec in out["recommendations"]:
        facts = chat.context.facts(rec["item_id"])
        assert "Comedy" in facts.genres and "Romance" not in facts.genres
        assert facts.year >= 1960 and not 1980 <= facts.year <= 1989
    assert "not: romance, 1980–1989" in out["intent_line"]


@pytest.mark.integration
def test_mood_words_map_to_genres_with_the_packaged_encoder():
    """MiniLM puts development mood words near their genre's descriptors, and filler and
    gibberish near none (the thresholds of `ChatSettings`)."""
    from mmsrarec.chat.context import ChatSettings
    from mmsrarec.chat.moods import MoodMap
    from mmsrarec.config import Settings
    from mmsrarec.models import ModelCache

    chat = ChatSettings()
    moods = MoodMap.build(
        ModelCache(Settings()).encoder("all-minilm-l6-v2"),
        lexicon.GENRE_DESCRIPTORS,
        chat.mood_similarity,
        chat.mood_margin,
    )
    found = {m.word: m.genre for m in moods.genre_of(
        ["creepy", "futuristic", "explosive", "tense", "gory", "tonight", "asdf", "popcorn"]
    )}  # fmt: skip
    assert found == {
        "creepy": "Horror", "futuristic": "Sci-Fi", "explosive": "Action", "tense": "Thriller",
        "gory": "Horror",
    }  # fmt: skip


def test_a_later_mood_wins_over_an_earlier_one(reader):
    def step(intent, text, wanted=None, avoided=None):
        parsed = parse_message(text, reader.titles, reader.genres, frozenset())
        return update_intent(
            intent, parsed, {}, lambda i: None, reader.catalog.span, (wanted or {}, avoided or {})
        )

    intent = step(Intent(), "nothing creepy", avoided={"creepy": "Horror"})
    assert intent.avoid_moods == {"creepy": "Horror"} and intent.has_request()
    intent = step(intent, "actually something creepy", wanted={"creepy": "Horror"})
    assert intent.moods == {"creepy": "Horror"} and intent.avoid_moods == {}
    assert intent.all_genres() == ["Horror"] and intent.all_avoided() == []
