"""Year expressions as typed intervals with a polarity.

Every year phrase of a message becomes a `YearCondition`: an inclusive `YearSpan` (either end
open) and whether it is negated ("nothing before 1980", "not from the 80s"). The phrases are
(word lists in `lexicon.py`):

- ranges: "between 1970 and 1980", "1970-1980", "1970 through 1980";
- bounds: "before / until / older than Y" (an upper end), "after / since / newer than Y" (a
  lower end), "from Y on(wards)";
- decades: "the 80s", "the 1980s", "'80s", "80's", "the eighties", "early / mid / late 80s";
- a lone year: "from 1996" (that year).

Years and decades in words ("nineteen eighty-five", "nineteen-eighties") are turned into digits
first (`digits`). Several positive phrases ("the 50s or the 80s") allow their union; a negated
one removes its span (`combine`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mmsrarec.chat import lexicon as lx

YEAR = r"(?:1[89]\d\d|20\d\d)"


@dataclass(frozen=True)
class YearSpan:
    """Release years `low`..`high`, inclusive; None = open on that side."""

    low: int | None = None
    high: int | None = None

    def years(self, span: tuple[int, int]) -> set[int]:
        low = span[0] if self.low is None else max(span[0], self.low)
        high = span[1] if self.high is None else min(span[1], self.high)
        return set(range(low, high + 1))


@dataclass(frozen=True)
class YearCondition:
    """One year phrase: `span` wanted, or (negated) not wanted."""

    span: YearSpan
    negated: bool = False


@dataclass(frozen=True)
class Years:
    """The allowed years of a request: inside `within` (None: any) and outside every `avoid`."""

    within: YearSpan | None = None
    avoid: tuple[YearSpan, ...] = ()

    def allowed(self, span: tuple[int, int]) -> set[int]:
        years = (self.within or YearSpan()).years(span)
        for gap in self.avoid:
            years -= gap.years(span)
        return years

    def is_empty(self) -> bool:
        return self.within is None and not self.avoid


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _number_words() -> re.Pattern[str]:
    units, teens, tens = (_alternation(d) for d in (lx.NUMBER_UNITS, lx.NUMBER_TEENS,
                                                   lx.NUMBER_TENS))  # fmt: skip
    decades = _alternation(lx.DECADE_WORDS)
    return re.compile(
        rf"\b(?P<century>{_alternation(lx.CENTURIES)})[\s-]+(?:"
        rf"(?P<decades>{decades})|(?P<tens>{tens})(?:[\s-]+(?P<unit>{units}))?"
        rf"|(?P<teen>{teens})|(?:oh|o)[\s-]+(?P<single>{units}))\b"
    )


NUMBER_WORDS = _number_words()


def digits(text: str) -> str:
    """Years and decades in words as digits: "nineteen eighty-five" -> "1985",
    "nineteen-eighties" -> "1980s"."""

    def replace(hit: re.Match[str]) -> str:
        century = lx.CENTURIES[re.sub(r"[\s-]+", " ", hit["century"])]
        if hit["decades"]:
            return f"{century + lx.DECADE_WORDS[hit['decades']] % 100}s"
        if hit["tens"]:
            rest = lx.NUMBER_TENS[hit["tens"]] + lx.NUMBER_UNITS.get(hit["unit"] or "", 0)
        elif hit["teen"]:
            rest = lx.NUMBER_TEENS[hit["teen"]]
        else:
            rest = lx.NUMBER_UNITS[hit["single"]]
        return str(century + rest)

    return NUMBER_WORDS.sub(replace, text)


def _decade_span(start: int, part: str | None) -> YearSpan:
    low, high = lx.PARTS_OF_DECADE.get(part or "", (0, 9))
    return YearSpan(start + low, start + high)


def _century(prefix: str | None, digit: str) -> int:
    if prefix:
        return int(prefix) * 100 + 10 * int(digit)
    return (2000 if digit in "012" else 1900) + 10 * int(digit)


PART = rf"(?:(?P<part>{_alternation(lx.PARTS_OF_DECADE)})[\s-]*)?"
# (pattern, span builder): tried in this order; each hit is blanked before the next pattern.
PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], YearSpan]]] = [
    (
        re.compile(
            rf"\b(?:between\s+)?(?P<a>{YEAR})\s*(?:{_alternation(lx.RANGE_JOINS)})\s*"
            rf"(?P<b>{YEAR})\b"
        ),
        lambda m: YearSpan(*sorted((int(m["a"]), int(m["b"])))),
    ),
    (
        re.compile(rf"\bfrom\s+(?P<y>{YEAR})\s+(?:on|onwards?|and later|forward)\b"),
        lambda m: YearSpan(int(m["y"]), None),
    ),
    (
        re.compile(rf"\b(?P<cue>{_alternation(lx.UP_TO)})[\s-]*(?:the\s+year\s+)?(?P<y>{YEAR})\b"),
        lambda m: YearSpan(None, int(m["y"]) + lx.UP_TO[m["cue"]]),
    ),
    (
        re.compile(rf"\b(?P<cue>{_alternation(lx.FROM)})[\s-]*(?:the\s+year\s+)?(?P<y>{YEAR})\b"),
        lambda m: YearSpan(int(m["y"]) + lx.FROM[m["cue"]], None),
    ),
    (
        re.compile(rf"\b{PART}(?:the\s+)?(?:'|(?P<c>19|20))?(?P<d>\d)0'?s\b"),
        lambda m: _decade_span(_century(m["c"], m["d"]), m["part"]),
    ),
    (
        re.compile(rf"\b{PART}(?:the\s+)?(?P<w>{_alternation(lx.DECADE_WORDS)})\b"),
        lambda m: _decade_span(lx.DECADE_WORDS[m["w"]], m["part"]),
    ),
    (re.compile(rf"\b(?P<y>{YEAR})\b"), lambda m: YearSpan(int(m["y"]), int(m["y"]))),
]
# "80s" after "'" is written "'80s": the pattern's `\b` needs the quote kept out of the way.
QUOTED_DECADE = re.compile(r"(?<![\w])'(\d0'?s)\b")


def read_years(
    text: str, negated_at: Callable[[str, int], bool]
) -> tuple[list[YearCondition], str]:
    """The year phrases of `text` (already lower case, years in digits) in order of appearance,
    each negated when `negated_at(text, start)` says a negation cue scopes over it; and `text`
    with them blanked (so that their words are not read again)."""
    text = QUOTED_DECADE.sub(r" \1", text)
    found: list[tuple[int, YearCondition]] = []
    for pattern, build in PATTERNS:
        for hit in pattern.finditer(text):
            span = build(hit)
            found.append((hit.start(), YearCondition(span, negated_at(text, hit.start()))))
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return [condition for _, condition in sorted(found, key=lambda pair: pair[0])], text


def combine(conditions: Sequence[YearCondition]) -> Years:
    """The years a message allows: the union of its positive spans (as their hull minus the
    gaps between them), less every negated span. A negated half-open span ("nothing before
    1980") is the other half, wanted."""
    wanted, avoid = [], []
    for condition in conditions:
        span = condition.span
        if not condition.negated:
            wanted.append(span)
        elif span.low is None and span.high is not None:
            wanted.append(YearSpan(span.high + 1, None))
        elif span.high is None and span.low is not None:
            wanted.append(YearSpan(None, span.low - 1))
        else:
            avoid.append(span)
    if not wanted:
        return Years(None, tuple(avoid))
    halves = [s for s in wanted if s.low is None or s.high is None]
    if halves:  # a bound with others: their intersection ("after 1980, before 1990")
        low = max((s.low for s in wanted if s.low is not None), default=None)
        high = min((s.high for s in wanted if s.high is not None), default=None)
        return Years(YearSpan(low, high), tuple(avoid))
    ordered = sorted(wanted, key=lambda s: (s.low, s.high))
    gaps = [
        YearSpan(a.high + 1, b.low - 1)
        for a, b in zip(ordered, ordered[1:], strict=False)
        if b.low > a.high + 1
    ]
    hull = YearSpan(ordered[0].low, max(s.high for s in ordered))
    return Years(hull, tuple(gaps) + tuple(avoid))


def narrow(old: Years, new: Years, span: tuple[int, int]) -> Years:
    """A later message's years on top of the earlier ones: the intersection when they overlap
    (a new bound narrows), else the new years (the user changed their mind). Avoided spans
    add up."""
    if new.within is None:
        return Years(old.within, old.avoid + new.avoid)
    if old.within is None:
        return Years(new.within, old.avoid + new.avoid)
    a, b = old.within, new.within
    low = max((x for x in (a.low, b.low) if x is not None), default=None)
    high = min((x for x in (a.high, b.high) if x is not None), default=None)
    both = YearSpan(low, high)
    if both.years(span) - {y for gap in old.avoid + new.avoid for y in gap.years(span)}:
        return Years(both, old.avoid + new.avoid)
    return new
