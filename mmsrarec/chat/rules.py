"""The rule-based reader of one chat message: what it says about titles, genres, years and
wishes, with negation scope. Pure functions over text; no model.

Who does what (the packaged 135M LLM is not reliable enough to extract structure, so no LLM
reads the message):

- rules (this module, word lists in `lexicon.py`): titles (via `TitleIndex`), liked /
  disliked / seen titles, wanted and avoided genres, decades and year ranges, refinements
  ("older", "newer", "start over", "the second one"), and which words are soft wishes;
- sentence embeddings (the catalog's Chroma index, `catalog.py`): only the soft wishes
  ("tense", "dark") are matched, by meaning, against the items that pass the hard filter.

Negation scope: a cue ("not", "no", "without", "don't", "hated", "less", ...) negates what
follows it up to the end of its clause (`, ; . ! ?`, "but", "however", "instead") or up to a
positive cue ("want", "love", ...) that is not itself within 3 words of the negation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmsrarec.chat import lexicon as lx
from mmsrarec.chat.parse import WORD, Mention, TitleIndex
from mmsrarec.scoring.evidence import STOPWORDS

YEAR_SPAN = r"(?:1[89]\d\d|20\d\d)"
RANGE = re.compile(
    rf"\b(?:between\s+)?({YEAR_SPAN})\s*(?:-|–|to|and|until|through)\s*({YEAR_SPAN})\b"
)
DECADE = re.compile(r"\b(early|mid|late)?[\s-]*(?:the\s+)?(?:'|(19|20))?(\d)0'?s\b")
BEFORE = re.compile(rf"\b(?:before|earlier than|older than|until|up to|pre)[\s-]*({YEAR_SPAN})\b")
AFTER = re.compile(rf"\b(after|since|newer than|later than|post)[\s-]*({YEAR_SPAN})\b")
FROM_ON = re.compile(rf"\bfrom\s+({YEAR_SPAN})\s+(?:on|onwards?)\b")
ONE_YEAR = re.compile(rf"\b({YEAR_SPAN})\b")
ORDINAL = re.compile(r"\b(?:the\s+)?(first|second|third|fourth|fifth|last)(?:\s+one)?\b|#\s*(\d)\b")
PLACEHOLDER = "qqtitle"


@dataclass
class Parsed:
    """What one message says. Title mentions keep every id they may mean (resolved later)."""

    liked: list[Mention] = field(default_factory=list)
    disliked: list[Mention] = field(default_factory=list)
    seen: list[Mention] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)
    avoid_genres: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    wishes: list[str] = field(default_factory=list)
    avoid_wishes: list[str] = field(default_factory=list)
    refine: list[str] = field(default_factory=list)  # older, newer, old, recent, startover, instead
    picks: dict[str, list[int]] = field(
        default_factory=dict
    )  # like/reject/seen -> 1-based, -1 last
    seen_last: str = ""  # "first" or "all": "I've seen it" / "seen them" about the last picks
    unknown: list[str] = field(default_factory=list)  # words understood as nothing

    def understood(self) -> bool:
        """True when the message says anything the intent can use."""
        return any(
            (
                self.liked, self.disliked, self.seen, self.genres, self.avoid_genres,
                self.year_min is not None, self.year_max is not None, self.wishes,
                self.avoid_wishes, set(self.refine) - {"instead"}, self.picks, self.seen_last,
            )
        )  # fmt: skip


def _add(values: list, *new) -> None:
    for value in new:
        if value not in values:
            values.append(value)


def read_years(text: str, parsed: Parsed) -> str:
    """Fill the year range from `text`; returns `text` with the year phrases blanked."""
    for pattern, kind in (
        (RANGE, "range"),
        (FROM_ON, "from"),
        (BEFORE, "before"),
        (AFTER, "after"),
    ):
        for hit in pattern.finditer(text):
            if kind == "range":
                low, high = sorted((int(hit.group(1)), int(hit.group(2))))
                parsed.year_min, parsed.year_max = low, high
            elif kind == "from":
                parsed.year_min = int(hit.group(1))
            elif kind == "before":
                parsed.year_max = int(hit.group(1)) - 1
            else:
                year = int(hit.group(2))
                parsed.year_min = (
                    year + 1
                    if hit.group(1) in ("after", "newer than", "later than", "post")
                    else year
                )  # noqa: E501
        text = pattern.sub(" ", text)
    for hit in DECADE.finditer(text):
        start = (2000 if hit.group(2) == "20" else 1900) + 10 * int(hit.group(3))
        _decade(parsed, start, hit.group(1))
    text = DECADE.sub(" ", text)
    for word, start in lx.DECADE_WORDS.items():
        found = re.search(rf"\b(early|mid|late)?[\s-]*{word}\b", text)
        if found:
            _decade(parsed, start, found.group(1))
            text = text.replace(found.group(0), " ")
    years = [int(y) for y in ONE_YEAR.findall(text)]
    if years and parsed.year_min is None and parsed.year_max is None:
        parsed.year_min, parsed.year_max = min(years), max(years)
    return ONE_YEAR.sub(" ", text)


def _decade(parsed: Parsed, start: int, part: str | None) -> None:
    low, high = {"early": (0, 3), "mid": (3, 6), "late": (6, 9)}.get(part or "", (0, 9))
    parsed.year_min, parsed.year_max = start + low, start + high


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, spellings folded (`lexicon.PHRASES`)."""
    text = text.lower().replace("’", "'").replace("n't", "nt").replace("don't", "dont")
    for pattern, token in lx.PHRASES:
        text = re.sub(pattern, f" {token} ", text)
    return text


def parse_message(
    text: str, titles: TitleIndex, genres: frozenset[str], vocabulary: frozenset[str]
) -> Parsed:
    """Read `text`.

    Args:
        text: The user's message.
        titles: The catalog's titles.
        genres: Genres the catalog has; genre words for others stay soft wishes.
        vocabulary: Words that may be soft wishes (catalog text and keywords); others are
            `unknown`, so that gibberish is not searched for.
    """
    parsed = Parsed()
    mentions = titles.mentions(text)
    for n, mention in enumerate(mentions):  # titles out of the text before any word rule
        text = re.sub(
            rf"(?<![\w]){re.escape(mention.phrase)}(?![\w])(?:\s*\(\d{{4}}\))?",
            f" {PLACEHOLDER}{n} ",
            text,
            flags=re.I,
        )
    text = read_years(normalise(text), parsed)
    for clause in lx.CLAUSE_END.split(text):
        _read_clause(clause, mentions, parsed, genres, vocabulary)
    if re.search(r"\b(?:instead|actually|rather)\b", text):
        _add(parsed.refine, "instead")
    return parsed


def _read_clause(
    clause: str,
    mentions: list[Mention],
    parsed: Parsed,
    genres: frozenset[str],
    vocabulary: frozenset[str],
) -> None:
    words = re.findall(rf"{PLACEHOLDER}\d+|#\s*\d|{WORD.pattern}", clause)
    seen_clause = any(w in lx.SEEN for w in words)
    likes_clause = any(w in lx.LIKES for w in words)
    negated, since_cue = False, 99
    titles_here: list[tuple[Mention, bool]] = []
    for _index, word in enumerate(words):
        since_cue += 1
        if word in lx.NEGATIONS:
            negated, since_cue = True, 0
            continue
        if word in lx.POSITIVES and since_cue > 3:
            negated = False
        if word.startswith(PLACEHOLDER):
            titles_here.append((mentions[int(word.removeprefix(PLACEHOLDER))], negated))
        elif word in ("older", "earlier", "newer", "later", "startover"):
            _add(parsed.refine, word.replace("earlier", "older").replace("later", "newer"))
        elif word in ("old", "classic", "oldie", "oldies") and not negated:
            _add(parsed.refine, "old")
        elif word in ("recent", "new", "modern", "latest"):
            _add(parsed.refine, "recent")
        elif word in lx.VIOLENCE_WORDS:
            if negated:
                _add(parsed.avoid_genres, *(g for g in lx.VIOLENT_GENRES if g in genres))
                _add(parsed.avoid_wishes, "violence")
            else:
                _add(parsed.wishes, word)
        elif word in lx.GENRE_WORDS and all(g in genres for g in lx.GENRE_WORDS[word]):
            target = parsed.avoid_genres if negated else parsed.genres
            _add(target, *lx.GENRE_WORDS[word])
        elif word in lx.ORDINALS or re.fullmatch(r"#\s*\d", word):
            number = lx.ORDINALS.get(word) or int(word[-1])
            kind = "reject" if negated else "seen" if seen_clause else "like"
            parsed.picks.setdefault(kind, []).append(number)
        elif word in ("it", "that", "them", "those", "these", "all") and seen_clause:
            if not parsed.picks.get("seen"):
                parsed.seen_last = "all" if word in ("them", "those", "these", "all") else "first"
        elif word in lx.FILLER or word in STOPWORDS or word in lx.NEGATIONS or len(word) < 3:
            continue
        elif word in lx.MOOD_WORDS or word in vocabulary:
            _add(parsed.avoid_wishes if negated else parsed.wishes, word)
        elif not any(word in w for w in (lx.SEEN, lx.LIKES, lx.DISLIKE_AFTER)):
            _add(parsed.unknown, word)
    disliked_after = any(w in lx.DISLIKE_AFTER for w in words)
    for mention, negated_title in titles_here:
        if negated_title or (disliked_after and not likes_clause):
            parsed.disliked.append(mention)
        elif seen_clause and not likes_clause:
            parsed.seen.append(mention)
        else:
            parsed.liked.append(mention)
    if parsed.seen_last and parsed.picks.get("seen"):
        parsed.seen_last = ""
