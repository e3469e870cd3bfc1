"""The rule-based reader of one chat message: what it says about titles, genres, years and
wishes, with negation scope. Pure functions over text; no model.

Who does what:

- rules (this module; every word list in `lexicon.py`): titles (via `TitleIndex`), liked /
  disliked / seen titles, "not its sequels", wanted and avoided genres (typos corrected by
  `spelling.py`), year phrases (`years.py`), refinements ("older", "start over", "the second
  one", "the older the better"), and which words are left for the mood map;
- sentence embeddings: `moods.py` maps the left words to genres when the message names
  none; the catalog's Chroma index (`catalog.py`) matches soft wishes by meaning.

Negation scope: a cue ("not", "no", "without", "except", "anything but", "I hate", ...)
negates what follows it up to the end of its clause (`, ; . ! ?`, "but", "however",
"instead") or up to a positive cue ("want", "love", ...) that is not itself within 3 words of
the negation. A negated year phrase is read with the opposite polarity ("nothing before 1980"
= from 1980; "not from the 80s" = outside 1980-1989).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from mmsrarec.chat import lexicon as lx
from mmsrarec.chat.parse import WORD, Mention, TitleIndex
from mmsrarec.chat.spelling import Correction, correct
from mmsrarec.chat.years import YearCondition, digits, read_years
from mmsrarec.scoring.evidence import STOPWORDS

ORDINAL = re.compile(r"#\s*(\d)\b")
PLACEHOLDER = "qqtitle"
TOKEN = re.compile(rf"{PLACEHOLDER}\d+|#\s*\d|{WORD.pattern}")
SCOPE_WORDS = 3  # a positive cue this close after a negation stays inside its scope


@dataclass
class Parsed:
    """What one message says. Title mentions keep every id they may mean (resolved later)."""

    liked: list[Mention] = field(default_factory=list)
    disliked: list[Mention] = field(default_factory=list)
    seen: list[Mention] = field(default_factory=list)
    no_sequels: bool = False  # "not its sequels": the liked titles' series are excluded
    genres: list[str] = field(default_factory=list)
    avoid_genres: list[str] = field(default_factory=list)
    years: list[YearCondition] = field(default_factory=list)
    wishes: list[str] = field(default_factory=list)
    avoid_wishes: list[str] = field(default_factory=list)
    refine: list[str] = field(default_factory=list)  # older, newer, old, recent, startover, instead
    order: str = ""  # "oldest" / "newest": "the older / newer the better"
    picks: dict[str, list[int]] = field(default_factory=dict)  # like/reject/seen -> 1-based
    seen_last: str = ""  # "first" or "all": "I've seen it" / "seen them" about the last picks
    unknown: list[str] = field(default_factory=list)  # words understood as nothing
    avoid_unknown: list[str] = field(default_factory=list)  # the same, negated
    corrections: list[Correction] = field(default_factory=list)  # typos read as lexicon words

    def understood(self) -> bool:
        """True when the message says anything the intent can use."""
        return any(
            (
                self.liked, self.disliked, self.seen, self.genres, self.avoid_genres,
                self.years, self.wishes, self.avoid_wishes, set(self.refine) - {"instead"},
                self.picks, self.seen_last, self.order, self.no_sequels,
            )
        )  # fmt: skip

    def mood_words(self) -> tuple[list[str], list[str]]:
        """Words the mood map may read as genres: wanted, and negated."""
        return [*self.wishes, *self.unknown], [*self.avoid_wishes, *self.avoid_unknown]


def _add(values: list, *new) -> None:
    for value in new:
        if value not in values:
            values.append(value)


def _scope(words: list[str]) -> Iterator[tuple[str, bool]]:
    """Each word of a clause with whether a negation cue scopes over it (cues themselves are
    left out)."""
    negated, since_cue = False, 99
    for word in words:
        since_cue += 1
        if word in lx.NEGATIONS:
            negated, since_cue = True, 0
            continue
        if word in lx.POSITIVES and since_cue > SCOPE_WORDS:
            negated = False
        yield word, negated


def negated_at(text: str, position: int) -> bool:
    """Whether a negation cue scopes over `text[position:]` (within its clause)."""
    clause = lx.CLAUSE_END.split(text[:position])[-1]
    words = TOKEN.findall(clause)
    states = [negated for _, negated in _scope([*words, "x"])]
    return states[-1]


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, spellings folded (`lexicon.PHRASES`), years in words
    as digits."""
    text = text.lower().replace("’", "'").replace("n't", "nt").replace("don't", "dont")
    for pattern, token in lx.PHRASES:
        text = re.sub(pattern, f" {token} ", text)
    return digits(text)


def spelling_targets(genres: Collection[str]) -> dict[str, object]:
    """Lexicon words a typo may be corrected to, with what they mean."""
    words: dict[str, object] = {
        word: tuple(names)
        for word, names in lx.GENRE_WORDS.items()
        if all(g in genres for g in names)
    }
    return words | {word: start for word, start in lx.DECADE_WORDS.items()}


def fix_typos(
    text: str, targets: dict[str, object], known: Collection[str]
) -> tuple[str, list[Correction]]:
    """`text` with misspelt lexicon words corrected (`spelling.correct`)."""
    fixes: list[Correction] = []

    def replace(hit: re.Match[str]) -> str:
        word = hit.group(0)
        if word in lx.FILLER or word in STOPWORDS or word in lx.NEGATIONS:
            return word
        found = correct(word, targets, known)
        if found is None:
            return word
        fixes.append(found)
        return found.target

    return WORD.sub(replace, text), fixes


def parse_message(
    text: str,
    titles: TitleIndex,
    genres: frozenset[str],
    vocabulary: frozenset[str],
    known: frozenset[str] = frozenset(),
) -> Parsed:
    """Read `text`.

    Args:
        text: The user's message.
        titles: The catalog's titles.
        genres: Genres the catalog has; genre words for others stay soft wishes.
        vocabulary: Words that may be soft wishes (catalog text and keywords); others are
            `unknown`, so that gibberish is not searched for.
        known: Real words (never taken for typos), besides `vocabulary` and the filler.
    """
    parsed = Parsed()
    mentions = titles.mentions(text)
    # Titles out of the text before any word rule, longest first ("Die Hard 2" before "Die Hard").
    for n, mention in sorted(enumerate(mentions), key=lambda pair: -len(pair[1].phrase)):
        text = re.sub(
            rf"(?<![\w]){re.escape(mention.phrase)}(?![\w])(?:\s*\(\d{{4}}\))?",
            f" {PLACEHOLDER}{n} ",
            text,
            flags=re.I,
        )
    text, parsed.corrections = fix_typos(
        normalise(text), spelling_targets(genres), known | vocabulary
    )
    parsed.years, text = read_years(text, negated_at)
    for clause in lx.CLAUSE_END.split(text):
        _read_clause(clause, mentions, parsed, genres, vocabulary)
    if lx.INSTEAD.search(text):
        _add(parsed.refine, "instead")
    return parsed


def _read_clause(
    clause: str,
    mentions: list[Mention],
    parsed: Parsed,
    genres: frozenset[str],
    vocabulary: frozenset[str],
) -> None:
    words = TOKEN.findall(clause)
    seen_clause = any(w in lx.SEEN for w in words)
    likes_clause = any(w in lx.LIKES for w in words)
    titles_here: list[tuple[Mention, bool]] = []
    for word, negated in _scope(words):
        if word.startswith(PLACEHOLDER):
            titles_here.append((mentions[int(word.removeprefix(PLACEHOLDER))], negated))
        elif word == "sequels":
            parsed.no_sequels = parsed.no_sequels or negated
        elif word in lx.ORDER_TOKENS:
            parsed.order = lx.ORDER_TOKENS[word]
        elif word == "startover":
            _add(parsed.refine, word)
        elif word in lx.OLDER or word in lx.NEWER:
            _add(parsed.refine, "older" if word in lx.OLDER else "newer")
        elif word in lx.OLD and not negated:
            _add(parsed.refine, "old")
        elif word in lx.RECENT:
            _add(parsed.refine, "recent")
        elif word in lx.VIOLENCE_WORDS:
            if negated:
                _add(parsed.avoid_genres, *(g for g in lx.VIOLENT_GENRES if g in genres))
                _add(parsed.avoid_wishes, "violence")
            else:
                _add(parsed.wishes, word)
        elif word in lx.GENRE_WORDS and all(g in genres for g in lx.GENRE_WORDS[word]):
            _add(parsed.avoid_genres if negated else parsed.genres, *lx.GENRE_WORDS[word])
        elif word in lx.ORDINALS or ORDINAL.fullmatch(word):
            number = lx.ORDINALS.get(word) or int(word[-1])
            kind = "reject" if negated else "seen" if seen_clause else "like"
            parsed.picks.setdefault(kind, []).append(number)
        elif word in lx.POINTERS and seen_clause:
            if not parsed.picks.get("seen"):
                parsed.seen_last = "all" if word in lx.PLURAL_POINTERS else "first"
        elif word in lx.FILLER or word in STOPWORDS or word in lx.NEGATIONS or len(word) < 3:
            continue
        elif word in lx.MOOD_WORDS or word in vocabulary:
            _add(parsed.avoid_wishes if negated else parsed.wishes, word)
        elif not any(word in w for w in (lx.SEEN, lx.LIKES, lx.DISLIKE_AFTER)):
            _add(parsed.avoid_unknown if negated else parsed.unknown, word)
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
