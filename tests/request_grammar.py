"""Compositional chat requests whose intent is known by construction (issue 25).

A request is built from slots (genres, excluded genres, year bounds, ranges and decades,
liked and disliked titles, moods, multi-turn refinements), each written by one of several
phrasing families (word order, negation forms, numbers and decades in digits and words,
casing, typos, filler). Every family belongs to one split:

- `dev`: looked at while writing the chat's word rules;
- `measure`: written and committed before the rules were, then only run for aggregate
  scores (never read for failures, never tuned on).

The chat never imports this module: it is the benchmark's and the tests' ground truth.

    catalog = Catalog.from_rows(rows)            # title, year, genres per item id
    cases = generate(catalog, seed=SEED, per_family=60)
    cases[0].turns[-1].want                      # the intent after the last turn

Intent by construction (`Want`): required genres (all of them), excluded genres, allowed
years (a union of inclusive ranges; empty = any), liked and disliked titles, and the titles
excluded as a liked title's series. Year words mean: "before Y" = up to Y-1, "after Y" = from
Y+1, "since Y" / "from Y onwards" = from Y, "until Y" / "up to Y" = up to Y, "older than Y" =
up to Y-1, "newer than Y" = from Y+1; "nothing before Y" = from Y, "nothing after Y" = up to
Y, "nothing older than Y" = from Y; "the 80s" = 1980-1989, early / mid / late = 0-3 / 3-6 /
6-9; "not from the 80s" removes 1980-1989; "the 50s or the 80s" allows both decades.
A mood word asks for the one genre it is listed under. A liked title asks for items sharing
at least one of its genres (`any_genres`), never the title itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

SEED = 25
PER_FAMILY = 100
MIN_MATCHES = 8  # a construction that fewer catalog items meet is redrawn

GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
# genre -> (singular with article, plural, bare word)
FORMS = {
    "Action": ("an action movie", "action movies", "action"),
    "Adventure": ("an adventure film", "adventure films", "adventure"),
    "Animation": ("an animated film", "animated movies", "animation"),
    "Children's": ("a children's movie", "children's movies", "children's"),
    "Comedy": ("a comedy", "comedies", "comedy"),
    "Crime": ("a crime film", "crime movies", "crime"),
    "Documentary": ("a documentary", "documentaries", "documentary"),
    "Drama": ("a drama", "dramas", "drama"),
    "Fantasy": ("a fantasy film", "fantasy movies", "fantasy"),
    "Film-Noir": ("a film noir", "noir films", "noir"),
    "Horror": ("a horror movie", "horror films", "horror"),
    "Musical": ("a musical", "musicals", "musical"),
    "Mystery": ("a mystery", "mysteries", "mystery"),
    "Romance": ("a romance", "romances", "romance"),
    "Sci-Fi": ("a sci-fi film", "science fiction movies", "sci-fi"),
    "Thriller": ("a thriller", "thrillers", "thriller"),
    "War": ("a war film", "war movies", "war"),
    "Western": ("a western", "westerns", "western"),
}
# Genres common enough to combine with other conditions.
MAIN = ("Action", "Adventure", "Comedy", "Crime", "Drama", "Horror", "Romance", "Sci-Fi",
        "Thriller", "War", "Children's", "Mystery", "Musical", "Western")  # fmt: skip
# Typos go into bare genre words of at least 5 letters.
TYPO_GENRES = ("Action", "Adventure", "Comedy", "Documentary", "Drama", "Fantasy", "Horror",
               "Musical", "Mystery", "Romance", "Thriller", "Western", "Crime")  # fmt: skip

DECADE_WORDS = {1920: "twenties", 1930: "thirties", 1940: "forties", 1950: "fifties",
                1960: "sixties", 1970: "seventies", 1980: "eighties", 1990: "nineties"}  # fmt: skip
UNITS = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty", 6: "sixty", 7: "seventy",
        8: "eighty", 9: "ninety"}  # fmt: skip
PARTS = {"early": (0, 3), "mid": (3, 6), "late": (6, 9)}

DEV_MOODS = {
    "Horror": ("scary", "creepy", "frightening"),
    "Thriller": ("suspenseful", "gripping"),
    "Sci-Fi": ("futuristic",),
    "Fantasy": ("magical",),
    "Action": ("explosive",),
    "Musical": ("singing",),
}
MEASURE_MOODS = {
    "Horror": ("spooky", "terrifying", "bloodcurdling"),
    "Thriller": ("nail-biting", "edge-of-your-seat"),
    "Sci-Fi": ("spaceship",),
    "Fantasy": ("enchanted",),
    "Action": ("adrenaline-pumping",),
    "Musical": ("song-and-dance",),
}

# Series by hand from the catalog's titles (first = the one the user names).
DEV_SERIES = (
    ("Alien (1979)", "Aliens (1986)", "Alien 3 (1992)", "Alien: Resurrection (1997)"),
    ("Die Hard (1988)", "Die Hard 2 (1990)", "Die Hard: With a Vengeance (1995)"),
    ("Jaws (1975)", "Jaws 2 (1978)", "Jaws 3-D (1983)"),
    ("Batman (1989)", "Batman Returns (1992)", "Batman Forever (1995)", "Batman & Robin (1997)"),
    ("Terminator, The (1984)", "Terminator 2: Judgment Day (1991)"),
    ("Star Wars (1977)", "Empire Strikes Back, The (1980)", "Return of the Jedi (1983)"),
)
MEASURE_SERIES = (
    ("Godfather, The (1972)", "Godfather: Part II, The (1974)"),
    ("Home Alone (1990)", "Home Alone 3 (1997)"),
    (
        "Free Willy (1993)",
        "Free Willy 2: The Adventure Home (1995)",
        "Free Willy 3: The Rescue (1997)",
    ),  # noqa: E501
    ("Jurassic Park (1993)", "Lost World: Jurassic Park, The (1997)"),
    ("Speed (1994)", "Speed 2: Cruise Control (1997)"),
    ("Grease (1978)", "Grease 2 (1982)"),
    ("Under Siege (1992)", "Under Siege 2: Dark Territory (1995)"),
    ("Ace Ventura: Pet Detective (1994)", "Ace Ventura: When Nature Calls (1995)"),
)
DEV_LIKED = ("Fargo (1996)", "Toy Story (1995)", "Pulp Fiction (1994)", "Casablanca (1942)",
             "Alien (1979)", "Heat (1995)", "Titanic (1997)",
             "Raiders of the Lost Ark (1981)")  # fmt: skip
MEASURE_LIKED = ("Silence of the Lambs, The (1991)", "Forrest Gump (1994)", "Braveheart (1995)",
                 "Princess Bride, The (1987)", "Twelve Monkeys (1995)", "Jurassic Park (1993)",
                 "Godfather, The (1972)", "Aladdin (1992)")  # fmt: skip

DEV_FILLERS = ("hi, {}", "{} please", "{} for tonight", "hello! {}")
MEASURE_FILLERS = ("{} for a rainy Sunday", "my friend says I should ask: {}", "hmm... {}",
                   "{}, to watch with popcorn")  # fmt: skip


@dataclass(frozen=True)
class Want:
    """The intent a request states, by construction (see the module docstring)."""

    genres: frozenset[str] = frozenset()
    avoid: frozenset[str] = frozenset()
    years: tuple[tuple[int | None, int | None], ...] = ()  # allowed: a union; () = any
    avoid_years: tuple[tuple[int | None, int | None], ...] = ()
    liked: tuple[str, ...] = ()  # catalog titles
    disliked: tuple[str, ...] = ()
    series: tuple[str, ...] = ()  # titles excluded as a liked title's series

    def allowed_years(self, span: tuple[int, int]) -> frozenset[int]:
        """The allowed release years inside `span` (all of them without a year condition)."""
        low, high = span
        spans = self.years or ((None, None),)
        years = {
            y
            for a, b in spans
            for y in range(a if a is not None else low, (b if b is not None else high) + 1)
        }
        for a, b in self.avoid_years:
            years -= set(range(a if a is not None else low, (b if b is not None else high) + 1))
        return frozenset(y for y in years if low <= y <= high)

    def banned(self) -> frozenset[str]:
        return frozenset((*self.liked, *self.disliked, *self.series))


@dataclass(frozen=True)
class Turn:
    text: str
    want: Want  # the whole conversation's intent after this turn
    recommend: bool = True  # False: the turn only resets or notes (no answer is checked)


@dataclass(frozen=True)
class Case:
    family: str
    split: str
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Item:
    title: str
    year: int | None
    genres: frozenset[str]


@dataclass
class Catalog:
    """What the generator knows of the catalog (from its own item text, not the chat's)."""

    items: list[Item]
    by_title: dict[str, Item] = field(default_factory=dict)
    span: tuple[int, int] = (1922, 1998)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, int | None, Sequence[str]]]) -> Catalog:
        items = [Item(title, year, frozenset(genres)) for title, year, genres in rows]
        years = [i.year for i in items if i.year is not None]
        return cls(items, {i.title: i for i in items}, (min(years), max(years)))

    def any_genres(self, want: Want) -> frozenset[str]:
        """Genres a liked title lends the request (when it states no genre itself)."""
        if want.genres:
            return frozenset()
        return frozenset(g for t in want.liked for g in self.by_title[t].genres)

    def meets(self, item: Item, want: Want) -> bool:
        """Whether `item` satisfies every hard condition of `want`."""
        if item.title in want.banned() or not want.genres <= item.genres:
            return False
        if item.genres & want.avoid:
            return False
        like = self.any_genres(want)
        if like and not item.genres & like:
            return False
        if want.years or want.avoid_years:
            return item.year is not None and item.year in want.allowed_years(self.span)
        return True

    def count(self, want: Want) -> int:
        return sum(self.meets(item, want) for item in self.items)


# ---- phrasing helpers ----


def decade_digits(start: int, r: random.Random, full: bool | None = None) -> str:
    full = r.random() < 0.5 if full is None else full
    return f"{start}s" if full else f"{start % 100:02d}s"


def year_words(year: int) -> str:
    """1985 -> "nineteen eighty-five" (1900-1999)."""
    rest = year % 100
    tens, unit = divmod(rest, 10)
    if rest == 0:
        return "nineteen hundred"
    if rest < 10:
        return f"nineteen oh {UNITS[unit]}"
    if rest < 20:
        teens = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                 "seventeen", "eighteen", "nineteen")  # fmt: skip
        return f"nineteen {teens[rest - 10]}"
    return f"nineteen {TENS[tens]}" + (f"-{UNITS[unit]}" if unit else "")


def typo(word: str, r: random.Random, kinds: Sequence[str]) -> str:
    """One edit inside `word` (never its first letter)."""
    kind = r.choice(kinds)
    letters = [i for i in range(1, len(word)) if word[i].isalpha()]
    i = r.choice(letters[:-1] if kind == "transpose" else letters)
    if kind == "delete":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if kind == "transpose":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    near = {"a": "s", "e": "r", "i": "o", "o": "i", "u": "y", "r": "t", "t": "r", "n": "m",
            "m": "n", "s": "a", "l": "k", "c": "x", "d": "s", "h": "j", "y": "u"}  # fmt: skip
    return word[:i] + near.get(word[i], "e") + word[i + 1 :]


def genres_want(*genres: str, **rest) -> Want:
    return Want(genres=frozenset(genres), **rest)


def pick_genre(r: random.Random, pool: Sequence[str] = MAIN, but: Sequence[str] = ()) -> str:
    return r.choice([g for g in pool if g not in but])


def decade(r: random.Random, low: int = 1930, high: int = 1990) -> int:
    return r.choice(range(low, high + 1, 10))


def year(r: random.Random, low: int = 1940, high: int = 1995) -> int:
    return r.randint(low, high)


# ---- families: (rng, catalog) -> turns ----

Family = Callable[[random.Random, Catalog], tuple[Turn, ...]]


def one(text: str, want: Want) -> tuple[Turn, ...]:
    return (Turn(text, want),)


def d_genre(r, cat):
    g = pick_genre(r)
    if r.random() < 0.3:
        g2 = pick_genre(r, ("Drama", "Comedy", "Romance", "Thriller"), but=[g])
        return one(f"{r.choice(['', 'I want ', 'show me '])}a {FORMS[g][2]} {FORMS[g2][2]} film",
                   genres_want(g, g2))  # fmt: skip
    lead = r.choice(["", "I want ", "show me ", "recommend "])
    return one(f"{lead}{r.choice(FORMS[g][:2])}", genres_want(g))


def d_exclude(r, cat):
    g = pick_genre(r)
    x = pick_genre(r, but=[g])
    text = r.choice([
        f"{FORMS[g][0]} but no {FORMS[x][2]}",
        f"{FORMS[g][0]} without {FORMS[x][2]}",
        f"not {FORMS[x][0]}, {FORMS[g][0]}",
        f"I don't want {FORMS[x][2]}, give me {FORMS[g][0]}",
    ])  # fmt: skip
    return one(text, genres_want(g, avoid=frozenset([x])))


def d_decade(r, cat):
    g, start = pick_genre(r), decade(r)
    part = r.choice([None, None, "early", "late"])
    low, high = PARTS.get(part, (0, 9))
    name = r.choice([decade_digits(start, r), DECADE_WORDS[start]])
    text = f"{FORMS[g][0]} from the {part + ' ' if part else ''}{name}"
    return one(text, genres_want(g, years=((start + low, start + high),)))


def d_bounds(r, cat):
    g, y = pick_genre(r), year(r)
    cue, years = r.choice([
        ("before", (None, y - 1)), ("after", (y + 1, None)), ("since", (y, None)),
        ("until", (None, y)),
    ])  # fmt: skip
    return one(f"{FORMS[g][0]} {cue} {y}", genres_want(g, years=(years,)))


def d_negated_years(r, cat):
    g, y, start = pick_genre(r), year(r, 1950, 1990), decade(r, 1950, 1990)
    text, want = r.choice([
        (f"{FORMS[g][0]}, nothing before {y}", genres_want(g, years=((y, None),))),
        (f"{FORMS[g][0]} but not from the {decade_digits(start, r)}",
         genres_want(g, avoid_years=((start, start + 9),))),
        (f"not from the {DECADE_WORDS[start]}, {FORMS[g][0]}",
         genres_want(g, avoid_years=((start, start + 9),))),
    ])  # fmt: skip
    return one(text, want)


def d_decade_or(r, cat):
    g = pick_genre(r)
    first = decade(r, 1940, 1980)
    second = r.choice([d for d in range(first + 10, 2000, 10)])
    full = r.random() < 0.5
    text = (
        f"{FORMS[g][0]} from the {decade_digits(first, r, full)} or "
        f"{decade_digits(second, r, full)}"
    )
    return one(text, genres_want(g, years=((first, first + 9), (second, second + 9))))


def d_range(r, cat):
    g, a = pick_genre(r), year(r, 1940, 1988)
    b = r.randint(a + 3, min(1998, a + 15))
    text = r.choice([f"{FORMS[g][0]} between {a} and {b}", f"{FORMS[g][1]} from {a} to {b}"])
    return one(text, genres_want(g, years=((a, b),)))


def d_typo(r, cat):
    g = pick_genre(r, TYPO_GENRES)
    word = typo(FORMS[g][2], r, ("delete", "double"))
    if r.random() < 0.3:
        x = pick_genre(r, TYPO_GENRES, but=[g])
        return one(f"a {FORMS[g][2]} but no {typo(FORMS[x][2], r, ('delete', 'double'))}",
                   genres_want(g, avoid=frozenset([x])))  # fmt: skip
    return one(r.choice([f"a {word} movie", f"some {word} please", f"{word}"]), genres_want(g))


def _mood(r, cat, moods):
    g = r.choice(sorted(moods))
    mood = r.choice(moods[g])
    if r.random() < 0.3:
        start = decade(r, 1960, 1990)
        return one(f"something {mood} from the {decade_digits(start, r)}",
                   genres_want(g, years=((start, start + 9),)))  # fmt: skip
    return one(r.choice([f"something {mood}", f"a {mood} movie", f"I feel like {mood} films"]),
               genres_want(g))  # fmt: skip


def d_mood(r, cat):
    return _mood(r, cat, DEV_MOODS)


def title_name(title: str) -> str:
    """How a person writes a catalog title: no year, article in front."""
    bare = title.rsplit(" (", 1)[0]
    for article in ("The", "A", "An"):
        if bare.endswith(f", {article}"):
            return f"{article} {bare[: -len(article) - 2]}"
    return bare


def d_liked(r, cat):
    t = r.choice(DEV_LIKED)
    if r.random() < 0.5:
        g = pick_genre(r)
        return one(f"loved {title_name(t)}, want {FORMS[g][0]}", genres_want(g, liked=(t,)))
    t2 = r.choice([x for x in DEV_LIKED if x != t])
    return one(f"I liked {title_name(t)} and {title_name(t2)}", Want(liked=(t, t2)))


def _sequels(r, cat, series, templates, named):
    chosen = r.choice(series)
    t, rest = chosen[0], chosen[1:]
    if r.random() < 0.4:
        other = r.choice(rest)
        text = r.choice(named).format(t=title_name(t), t2=title_name(other))
        return one(text, Want(liked=(t,), disliked=(other,)))
    return one(r.choice(templates).format(t=title_name(t)), Want(liked=(t,), series=rest))


def d_sequels(r, cat):
    return _sequels(
        r, cat, DEV_SERIES,
        ("like {t} but not its sequels", "loved {t}, no sequels please"),
        ("like {t} but not {t2}",),
    )  # fmt: skip


def d_casing_filler(r, cat):
    (turn,) = r.choice([d_genre, d_exclude, d_decade])(r, cat)
    return one(r.choice(DEV_FILLERS).format(turn.text).lower(), turn.want)


def d_narrow(r, cat):
    g, y = pick_genre(r), year(r, 1960, 1995)
    x = pick_genre(r, but=[g])
    first = genres_want(g)
    second = replace(first, years=((None, y - 1),))
    third = replace(second, avoid=frozenset([x]))
    return (
        Turn(FORMS[g][0], first),
        Turn(f"from before {y}", second),
        Turn(f"no {FORMS[x][2]}", third),
    )


def d_restart(r, cat):
    g, start = pick_genre(r), decade(r, 1950, 1990)
    g2 = pick_genre(r, but=[g])
    first = genres_want(g, years=((start, start + 9),))
    return (
        Turn(f"{FORMS[g][0]} from the {decade_digits(start, r)}", first),
        Turn("start over", Want(), recommend=False),
        Turn(FORMS[g2][0], genres_want(g2)),
    )


def m_genre_order(r, cat):
    g = pick_genre(r)
    text = r.choice([
        f"{FORMS[g][1]} are what I'm after",
        f"got any good {FORMS[g][1]}?",
        f"in the mood for {FORMS[g][2]}",
        f"{FORMS[g][2]}, that's what I feel like tonight",
    ])  # fmt: skip
    return one(text, genres_want(g))


def m_exclude(r, cat):
    g = pick_genre(r)
    x = pick_genre(r, but=[g])
    if r.random() < 0.25:
        return one(f"anything but {FORMS[x][1]}", Want(avoid=frozenset([x])))
    text = r.choice([
        f"{FORMS[g][0]}, anything but {FORMS[x][2]}",
        f"{FORMS[g][1]} except {FORMS[x][1]}",
        f"I hate {FORMS[x][1]}, so {FORMS[g][0]}",
        f"{FORMS[g][0]} - not into {FORMS[x][2]}",
    ])  # fmt: skip
    return one(text, genres_want(g, avoid=frozenset([x])))


def m_decade_words(r, cat):
    g, start = pick_genre(r), decade(r)
    part = r.choice([None, None, "early", "mid", "late"])
    low, high = PARTS.get(part, (0, 9))
    name = r.choice([
        f"nineteen-{DECADE_WORDS[start]}", f"'{start % 100:02d}s", f"{start % 100:02d}'s",
        f"{start}'s",
    ])  # fmt: skip
    lead = f"{part}-" if part == "mid" else f"{part} " if part else ""
    return one(f"{FORMS[g][1]} from the {lead}{name}",
               genres_want(g, years=((start + low, start + high),)))  # fmt: skip


def m_bounds(r, cat):
    g, y = pick_genre(r), year(r)
    written = year_words(y) if r.random() < 0.5 else str(y)
    cue, years = r.choice([
        ("older than", (None, y - 1)), ("newer than", (y + 1, None)),
        ("made up to", (None, y)), ("from {} onwards", (y, None)),
    ])  # fmt: skip
    phrase = cue.format(written) if "{}" in cue else f"{cue} {written}"
    return one(f"{FORMS[g][0]} {phrase}", genres_want(g, years=(years,)))


def m_negated_years(r, cat):
    g, y, start = pick_genre(r), year(r, 1950, 1990), decade(r, 1950, 1990)
    text, want = r.choice([
        (f"{FORMS[g][0]}, nothing from before {y}", genres_want(g, years=((y, None),))),
        (f"{FORMS[g][0]}, nothing after {y}", genres_want(g, years=((None, y),))),
        (f"{FORMS[g][1]} but nothing older than {y}", genres_want(g, years=((y, None),))),
        (f"{FORMS[g][0]}, but no {decade_digits(start, r)} stuff",
         genres_want(g, avoid_years=((start, start + 9),))),
        (f"{FORMS[g][1]}, just not from the {DECADE_WORDS[start]}",
         genres_want(g, avoid_years=((start, start + 9),))),
    ])  # fmt: skip
    return one(text, want)


def m_decade_or(r, cat):
    g = pick_genre(r)
    first = decade(r, 1940, 1980)
    second = r.choice([d for d in range(first + 10, 2000, 10)])
    text = r.choice([
        f"{FORMS[g][0]} from the {DECADE_WORDS[first]} or the {DECADE_WORDS[second]}",
        f"{decade_digits(first, r, False)} or {decade_digits(second, r, False)} {FORMS[g][1]}",
        f"{FORMS[g][0]}, either the {DECADE_WORDS[first]} or the {DECADE_WORDS[second]}",
    ])  # fmt: skip
    return one(text, genres_want(g, years=((first, first + 9), (second, second + 9))))


def m_range(r, cat):
    g, a = pick_genre(r), year(r, 1940, 1988)
    b = r.randint(a + 3, min(1998, a + 15))
    text = r.choice([
        f"{FORMS[g][0]} made {a}-{b}", f"{FORMS[g][1]}, {a} through {b}",
        f"{FORMS[g][0]} released between {year_words(a)} and {year_words(b)}",
    ])  # fmt: skip
    return one(text, genres_want(g, years=((a, b),)))


def m_typo(r, cat):
    g = pick_genre(r, TYPO_GENRES)
    word = typo(FORMS[g][2], r, ("transpose", "substitute"))
    if r.random() < 0.3:
        x = pick_genre(r, TYPO_GENRES, but=[g])
        return one(f"{word}, without {typo(FORMS[x][2], r, ('transpose', 'substitute'))}",
                   genres_want(g, avoid=frozenset([x])))  # fmt: skip
    return one(r.choice([f"any good {word}?", f"{word} film", f"looking for {word}"]),
               genres_want(g))  # fmt: skip


def m_mood(r, cat):
    return _mood(r, cat, MEASURE_MOODS)


def m_liked(r, cat):
    t = r.choice(MEASURE_LIKED)
    if r.random() < 0.5:
        g = pick_genre(r)
        text = r.choice([
            f"{title_name(t)} is one of my favourites, so {FORMS[g][0]}",
            f"big fan of {title_name(t)}; something {FORMS[g][2]}",
        ])  # fmt: skip
        return one(text, genres_want(g, liked=(t,)))
    t2 = r.choice([x for x in MEASURE_LIKED if x != t])
    return one(f"{title_name(t)} and {title_name(t2)} were great", Want(liked=(t, t2)))


def m_sequels(r, cat):
    return _sequels(
        r, cat, MEASURE_SERIES,
        ("{t} was great, none of the sequels though", "loved {t} (not the sequels)"),
        ("something like {t}, just not {t2}",),
    )  # fmt: skip


def m_casing_filler(r, cat):
    (turn,) = r.choice([d_genre, d_exclude, d_decade])(r, cat)
    text = r.choice(MEASURE_FILLERS).format(turn.text)
    return one(text.upper() if r.random() < 0.5 else text.title(), turn.want)


def m_narrow(r, cat):
    g, y = pick_genre(r), year(r, 1960, 1995)
    x = pick_genre(r, but=[g])
    first = genres_want(g)
    second = replace(first, years=((None, y - 1),))
    third = replace(second, avoid=frozenset([x]))
    return (
        Turn(f"{FORMS[g][2]} please", first),
        Turn(f"the older the better, before {y}", second),
        Turn(f"oh and I hate {FORMS[x][1]}", third),
    )


def m_restart(r, cat):
    g, start, y = pick_genre(r), decade(r, 1950, 1990), year(r, 1970, 1992)
    g2 = pick_genre(r, but=[g])
    first = genres_want(g, years=((start, start + 9),))
    return (
        Turn(f"{FORMS[g][0]} from the {DECADE_WORDS[start]}", first),
        Turn("forget that, let's start again", Want(), recommend=False),
        Turn(f"{FORMS[g2][0]} after {y}", genres_want(g2, years=((y + 1, None),))),
    )


FAMILIES: dict[str, tuple[str, Family]] = {
    "genre": ("dev", d_genre),
    "exclude": ("dev", d_exclude),
    "decade": ("dev", d_decade),
    "bounds": ("dev", d_bounds),
    "negated_years": ("dev", d_negated_years),
    "decade_or": ("dev", d_decade_or),
    "range": ("dev", d_range),
    "typo": ("dev", d_typo),
    "mood": ("dev", d_mood),
    "liked": ("dev", d_liked),
    "sequels": ("dev", d_sequels),
    "casing_filler": ("dev", d_casing_filler),
    "narrow": ("dev", d_narrow),
    "restart": ("dev", d_restart),
    "m_genre_order": ("measure", m_genre_order),
    "m_exclude": ("measure", m_exclude),
    "m_decade_words": ("measure", m_decade_words),
    "m_bounds": ("measure", m_bounds),
    "m_negated_years": ("measure", m_negated_years),
    "m_decade_or": ("measure", m_decade_or),
    "m_range": ("measure", m_range),
    "m_typo": ("measure", m_typo),
    "m_mood": ("measure", m_mood),
    "m_liked": ("measure", m_liked),
    "m_sequels": ("measure", m_sequels),
    "m_casing_filler": ("measure", m_casing_filler),
    "m_narrow": ("measure", m_narrow),
    "m_restart": ("measure", m_restart),
}


def draw(family: str, r: random.Random, catalog: Catalog, tries: int = 50) -> Case:
    """One case of `family` whose every answered turn at least `MIN_MATCHES` items meet."""
    split, build = FAMILIES[family]
    for _ in range(tries):
        turns = build(r, catalog)
        if all(catalog.count(t.want) >= MIN_MATCHES for t in turns if t.recommend):
            return Case(family, split, turns)
    raise ValueError(f"family `{family}`: no satisfiable draw in {tries} tries")


def generate(catalog: Catalog, seed: int = SEED, per_family: int = PER_FAMILY) -> list[Case]:
    """`per_family` cases of every family, drawn from one seeded generator per family (so
    adding a family does not change the others' cases); repeated texts are redrawn."""
    cases = []
    for family in FAMILIES:
        r = random.Random(f"{seed}:{family}")
        texts: set[tuple[str, ...]] = set()
        for _ in range(per_family * 20):
            case = draw(family, r, catalog)
            key = tuple(t.text for t in case.turns)
            if key not in texts:
                texts.add(key)
                cases.append(case)
            if len(texts) == per_family:
                break
    return cases
