"""Pure text helpers of the chat: which titles a message names, whether a text holds an
avoided word, and which offered option an answer picks (the rest of a message is read by
`rules.py`).

Titles are matched as whole words, case-insensitively, longest first, without the year and
with a trailing article moved to the front ("Godfather, The (1972)" is "the godfather" and
"godfather"). A one-word title must be written capitalised ("Alien", not "alien"), so that
everyday words ("heat", "speed") are not taken for films.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mmsrarec.data import Item

YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
ARTICLE = re.compile(r"^(.*), (the|a|an)$", re.IGNORECASE)
WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}


def title_aliases(title: str) -> list[str]:
    """Lower-case names a user may write for `title`: without the year, article in front
    and left out ("Godfather, The (1972)" -> ["the godfather", "godfather"])."""
    bare = YEAR.sub("", title).strip()
    moved = ARTICLE.match(bare)
    names = [f"{moved.group(2)} {moved.group(1)}", moved.group(1)] if moved else [bare]
    return [name.lower() for name in names if len(name) >= 3]


def year_of(title: str) -> str | None:
    found = YEAR.search(title)
    return found.group(1) if found else None


@dataclass(frozen=True)
class Mention:
    """A title named in the text: the words as written and every item they may mean."""

    phrase: str
    item_ids: tuple[str, ...]


@dataclass
class TitleIndex:
    """Lower-case title alias -> item ids (several when remakes share a title)."""

    by_alias: dict[str, list[str]] = field(default_factory=dict)
    pattern: re.Pattern[str] | None = None
    by_title: dict[str, list[str]] = field(default_factory=dict)  # full title -> item ids

    @classmethod
    def from_items(cls, items: Sequence[Item]) -> TitleIndex:
        by_alias: dict[str, list[str]] = {}
        by_title: dict[str, list[str]] = {}
        for item in items:
            by_title.setdefault(item.title, []).append(item.item_id)
            for alias in title_aliases(item.title):
                ids = by_alias.setdefault(alias, [])
                if item.item_id not in ids:
                    ids.append(item.item_id)
        aliases = sorted(by_alias, key=len, reverse=True)  # longest first: "star wars" > "star"
        pattern = (
            re.compile(r"(?<![\w])(" + "|".join(map(re.escape, aliases)) + r")(?![\w])", re.I)
            if aliases
            else None
        )
        return cls(by_alias, pattern, by_title)

    def ids_of_title(self, title: str) -> list[str]:
        """Every item with exactly this title (ML-100K lists some films twice)."""
        return self.by_title.get(title, [])

    def mentions(self, text: str) -> list[Mention]:
        """Titles named in `text`, in order of appearance (each phrase once)."""
        if self.pattern is None:
            return []
        found: dict[str, Mention] = {}
        for hit in self.pattern.finditer(text):
            phrase = hit.group(1)
            if " " not in phrase.strip() and not phrase[:1].isupper():
                continue  # a lower-case single word: an ordinary word, not a title
            alias = phrase.lower()
            found.setdefault(alias, Mention(phrase, tuple(self.by_alias[alias])))
        return list(found.values())


SEQUEL_MARK = re.compile(r"(?:\s+(?:\d+(?:-d)?|[ivx]+|part\s+\w+))+$")


def series_key(title: str) -> str:
    """A title's series name: lower case, article in front, without the subtitle after ':',
    a trailing sequel number ("2", "III", "3-D", "Part II") or a plural "s" ("Aliens")."""
    name = title_aliases(title)[-1] if title_aliases(title) else title.lower()
    name = SEQUEL_MARK.sub("", name.split(":")[0].strip())
    return name[:-1] if name.endswith("s") and len(name) > 4 else name


def _year(title: str) -> int:
    found = year_of(title)
    return int(found) if found else 0


@dataclass
class SeriesIndex:
    """Item id -> the other items of its series: titles with one series name ("Die Hard 2",
    "Die Hard: With a Vengeance"), a title whose subtitle is another's name ("Lost World:
    Jurassic Park"), and `lexicon.SERIES` (entries that share no name)."""

    members: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_items(cls, items: Sequence[Item], named: Sequence[Sequence[str]] = ()) -> SeriesIndex:
        by_key: dict[str, set[str]] = {}
        for item in items:
            by_key.setdefault(series_key(item.title), set()).add(item.item_id)
        for item in items:  # "Lost World: Jurassic Park, The" joins "Jurassic Park"
            bare = YEAR.sub("", item.title)
            if ":" in bare:
                tail = series_key(bare.split(":", 1)[1].strip())
                if tail in by_key and len(tail) > 4:
                    by_key[tail].add(item.item_id)
        keys = {series_key(item.title): item for item in items if len(series_key(item.title)) > 4}
        for item in items:  # "Batman Returns (1992)" follows "Batman (1989)"
            words = series_key(item.title).split()
            for n in range(1, len(words)):
                first = keys.get(" ".join(words[:n]))
                if first is not None and _year(first.title) < _year(item.title):
                    by_key[series_key(first.title)].add(item.item_id)
        ids_of = {item.title: item.item_id for item in items}
        groups = [ids for ids in by_key.values() if len(ids) > 1]
        groups += [{ids_of[t] for t in titles if t in ids_of} for titles in named]
        members: dict[str, set[str]] = {}
        for group in groups:
            for item_id in group:
                members.setdefault(item_id, set()).update(group - {item_id})
        return cls({k: frozenset(v) for k, v in members.items() if v})

    def of(self, item_ids: Sequence[str]) -> list[str]:
        """The other items of the series of `item_ids`, in id order."""
        found = {other for i in item_ids for other in self.members.get(i, ())}
        return sorted(found - set(item_ids), key=lambda i: (len(i), i))


def avoided(text: str, avoid: Sequence[str]) -> bool:
    """True when `text` contains a word that starts like one of `avoid` ("gory" ~ "gore")."""
    words = WORD.findall(text.lower())
    stems = [term.rstrip("ys")[:6] for term in avoid if len(term.rstrip("ys")) >= 3]
    return any(word.startswith(stem) for stem in stems for word in words)


def resolve_choice(answer: str, options: Sequence[Item]) -> Item | None:
    """The option an answer picks: by number ("2", "the second"), by year or by full title."""
    text = answer.strip().lower()
    number = re.fullmatch(r"#?\s*(\d{1,2})\.?", text)
    index = int(number.group(1)) if number else None
    for word, value in ORDINALS.items():
        if re.search(rf"\b{word}\b", text):
            index = value
    if index is not None and 1 <= index <= len(options):
        return options[index - 1]
    years = set(re.findall(r"\b(\d{4})\b", text))
    by_year = [item for item in options if year_of(item.title) in years]
    if len(by_year) == 1:
        return by_year[0]
    by_title = [item for item in options if item.title.lower() in text]
    return by_title[0] if len(by_title) == 1 else None
