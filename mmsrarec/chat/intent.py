"""The structured intent of a conversation, and how each message updates it.

`Intent` lives in the chat thread's state: every turn `update_intent` merges what the message
says (`rules.Parsed`, its titles resolved to item ids) into it, so "something older" or "not
the second one" refine the request instead of replacing it. Pure functions, no model.

Merge rules (one place):
- titles: a liked title leaves `disliked` and vice versa; seen titles are never offered again;
- genres: a wanted genre leaves `avoid_genres` and vice versa; new wanted genres are added
  to the old ones unless the message says "instead" / "actually" / "rather";
- years (`years.py`): a new range narrows the old one when they overlap, else replaces it
  (the user changed their mind); avoided spans add up; "older" / "newer" shift the range by
  a decade (or, without one, start just before / after the years of the last picks);
  "old"/"recent" are relative to the catalog's span;
- moods: a message without a genre word may name moods ("spooky") that `moods.py` reads as
  genres; they are kept apart from the genres asked by name (relaxed first) and shown in the
  intent line as "spooky → horror";
- "not its sequels": the liked titles' series are excluded (`series`);
- wishes: added; a negated wish leaves `wishes`;
- "start over": everything but `seen` is forgotten before the rest of the message applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mmsrarec.chat.rules import Parsed
from mmsrarec.chat.years import Years, YearSpan, combine, narrow


class Intent(BaseModel):
    """What the user asked for so far in this conversation (item ids are raw catalog ids)."""

    model_config = ConfigDict(extra="forbid")

    liked: list[str] = Field(default_factory=list, description="Titles the user liked.")
    disliked: list[str] = Field(default_factory=list, description="Titles the user disliked.")
    seen: list[str] = Field(default_factory=list, description="Seen or rejected: never offered.")
    genres: list[str] = Field(default_factory=list, description="Genres required (all).")
    avoid_genres: list[str] = Field(default_factory=list, description="Genres excluded.")
    year_min: int | None = Field(None, description="Earliest release year, inclusive.")
    year_max: int | None = Field(None, description="Latest release year, inclusive.")
    avoid_years: list[tuple[int, int]] = Field(
        default_factory=list, description="Year spans excluded, inclusive ('not the 80s')."
    )
    moods: dict[str, str] = Field(
        default_factory=dict, description="Mood word -> the genre it was read as (required)."
    )
    avoid_moods: dict[str, str] = Field(
        default_factory=dict, description="Negated mood word -> the genre excluded."
    )
    series: list[str] = Field(
        default_factory=list, description="Items excluded as a liked title's series."
    )
    order: Literal["", "oldest", "newest"] = Field(
        "", description="Picks ordered by year: 'the older / newer the better'."
    )
    wishes: list[str] = Field(default_factory=list, description="Soft wishes ('tense').")
    avoid_wishes: list[str] = Field(default_factory=list, description="Soft dislikes ('dark').")
    shown: list[str] = Field(default_factory=list, description="Recommended so far.")
    last_shown: list[str] = Field(default_factory=list, description="The last reply's picks.")
    debias: float | None = Field(
        None, description="Popularity-bias control asked for ('hidden gems'); None = default."
    )
    not_into: list[str] = Field(
        default_factory=list, description="Motivations the user said are over ('horror')."
    )

    def has_request(self) -> bool:
        """True when there is something to recommend from (dislikes alone are not enough)."""
        return bool(
            self.liked
            or self.genres
            or self.avoid_genres
            or self.wishes
            or self.year_min is not None
            or self.year_max is not None
            or self.avoid_years
            or self.moods
            or self.avoid_moods
        )

    def banned(self) -> set[str]:
        """Items never to recommend: liked, disliked, seen, or of an excluded series. (Items
        already shown come last, and only when too few others meet the conditions: a later
        condition narrows the request, it does not make it fail.)"""
        return {*self.liked, *self.disliked, *self.seen, *self.series}

    def years(self) -> Years:
        within = (
            None
            if self.year_min is None and self.year_max is None
            else YearSpan(self.year_min, self.year_max)
        )
        return Years(within, tuple(YearSpan(a, b) for a, b in self.avoid_years))

    def all_genres(self) -> list[str]:
        """Genres required by name and by mood."""
        return list(dict.fromkeys([*self.genres, *self.moods.values()]))

    def all_avoided(self) -> list[str]:
        """Genres excluded by name and by mood."""
        return list(dict.fromkeys([*self.avoid_genres, *self.avoid_moods.values()]))


def _moved(keep: list[str], drop: list[str], new: Sequence[str]) -> tuple[list[str], list[str]]:
    """`new` added to `keep` and removed from `drop` (a later word wins over an earlier one)."""
    return list(dict.fromkeys([*keep, *new])), [x for x in drop if x not in new]


def update_intent(
    intent: Intent,
    parsed: Parsed,
    resolved: dict[str, list[str]],
    year_of: Callable[[str], int | None],
    span: tuple[int, int],
    moods: tuple[dict[str, str], dict[str, str]] = ({}, {}),
    series_of: Callable[[list[str]], list[str]] = lambda ids: [],
) -> Intent:
    """The intent after one message.

    Args:
        intent: Before the message.
        parsed: What the message says.
        resolved: Item ids for `liked`, `disliked` and `seen` (mentions already resolved).
        year_of: Release year of an item id (None when unknown).
        span: The catalog's earliest and latest year.
        moods: Mood words of the message read as genres: wanted, avoided (`moods.py`).
        series_of: The other items of the series of some item ids ("not its sequels").
    """
    base = Intent(seen=intent.seen) if "startover" in parsed.refine else intent
    last = base.last_shown
    picked = {kind: _picks(last, numbers) for kind, numbers in parsed.picks.items()}
    seen_last = {"first": last[:1], "all": list(last)}.get(parsed.seen_last, [])
    liked_now = [*resolved.get("liked", []), *picked.get("like", [])]
    disliked_now = [*resolved.get("disliked", []), *picked.get("reject", [])]
    liked, disliked = _moved(base.liked, base.disliked, liked_now)
    disliked, liked = _moved(disliked, liked, disliked_now)
    seen = list(
        dict.fromkeys([*base.seen, *resolved.get("seen", []), *picked.get("seen", []), *seen_last])
    )  # noqa: E501
    old_genres = [] if "instead" in parsed.refine and parsed.genres else base.genres
    genres, avoid_genres = _moved(old_genres, base.avoid_genres, parsed.genres)
    avoid_genres, genres = _moved(avoid_genres, genres, parsed.avoid_genres)
    wishes, avoid_wishes = _moved(base.wishes, base.avoid_wishes, parsed.wishes)
    avoid_wishes, wishes = _moved(avoid_wishes, wishes, parsed.avoid_wishes)
    years = narrow(base.years(), combine(parsed.years), span)
    year_min = years.within.low if years.within else None
    year_max = years.within.high if years.within else None
    shown_years = [y for y in (year_of(i) for i in last) if y is not None]
    if "older" in parsed.refine:
        year_min, year_max = _older(year_min, shown_years)
    if "newer" in parsed.refine:
        year_min, year_max = _newer(year_max, shown_years, span)
    if "old" in parsed.refine and year_max is None:
        year_max = min(span[1], max(span[0], 1969))
    if "recent" in parsed.refine and year_min is None:
        year_min = span[1] - 3
    wanted_moods, avoided_moods = moods
    # A later word wins: a mood now wanted leaves the avoided ones, and the reverse.
    new_moods = {
        **{w: g for w, g in base.moods.items() if g not in avoided_moods.values()},
        **wanted_moods,
    }
    new_avoid_moods = {
        **{w: g for w, g in base.avoid_moods.items() if g not in wanted_moods.values()},
        **avoided_moods,
    }
    series = list(base.series)
    if parsed.no_sequels:
        series = list(dict.fromkeys([*series, *series_of(liked_now or liked)]))
    return Intent(
        avoid_years=[(gap.low, gap.high) for gap in years.avoid],
        moods={w: g for w, g in new_moods.items() if g not in avoid_genres},
        avoid_moods={w: g for w, g in new_avoid_moods.items() if g not in genres},
        series=[i for i in series if i not in liked],
        order=parsed.order or base.order,
        liked=liked,
        disliked=disliked,
        seen=seen,
        genres=genres,
        avoid_genres=avoid_genres,
        year_min=year_min,
        year_max=year_max,
        wishes=wishes,
        avoid_wishes=avoid_wishes,
        shown=base.shown,
        last_shown=last,
    )


def _picks(last: list[str], numbers: list[int]) -> list[str]:
    """The last picks that ordinal `numbers` point at (1-based; -1 = the last one)."""
    chosen = []
    for number in numbers:
        index = len(last) - 1 if number == -1 else number - 1
        if 0 <= index < len(last):
            chosen.append(last[index])
    return chosen


def _older(year_min: int | None, shown_years: list[int]) -> tuple[int | None, int | None]:
    """A decade before the current range, or anything before the last picks."""
    if year_min is not None:
        return year_min - 10, year_min - 1
    if shown_years:
        return None, min(shown_years) - 1
    return None, None


def _newer(
    year_max: int | None, shown_years: list[int], span: tuple[int, int]
) -> tuple[int | None, int | None]:
    """A decade after the current range, or anything after the last picks."""
    if year_max is not None:
        return min(span[1], year_max + 1), min(span[1], year_max + 10)
    if shown_years:
        return max(shown_years) + 1, None
    return None, None


def intent_line(intent: Intent, title_of: Callable[[str], str]) -> str:
    """One line for the reply and the inspector, e.g. `Looking for: romance + comedy,
    1990–1999; not: horror, the 1980s; wishes: tense; liked: Alien (1979)`; a genre read from
    a mood shows the word: `spooky → horror`."""
    want = [" + ".join(g.lower() for g in intent.genres)] if intent.genres else []
    want += [f"{word} → {genre.lower()}" for word, genre in intent.moods.items()]
    if intent.year_min is not None or intent.year_max is not None:
        low = intent.year_min if intent.year_min is not None else "…"
        high = intent.year_max if intent.year_max is not None else "…"
        want.append(str(low) if low == high else f"{low}–{high}")
    if intent.order:
        want.append(f"{'oldest' if intent.order == 'oldest' else 'newest'} first")
    want += [w for w in intent.wishes if w not in intent.moods]
    parts = [f"Looking for: {', '.join(want) or 'anything'}"]
    avoid = [g.lower() for g in intent.avoid_genres]
    avoid += [f"{word} → {genre.lower()}" for word, genre in intent.avoid_moods.items()]
    avoid += [str(a) if a == b else f"{a}–{b}" for a, b in intent.avoid_years]
    avoid += [w for w in intent.avoid_wishes if w != "violence" and w not in intent.avoid_moods]
    if "violence" in intent.avoid_wishes:
        avoid.insert(0, "violence")
    if avoid:
        parts.append(f"not: {', '.join(dict.fromkeys(avoid))}")
    if intent.liked:
        parts.append(f"liked: {', '.join(title_of(i) for i in intent.liked[-4:])}")
    if intent.series:
        parts.append(f"not the series: {', '.join(title_of(i) for i in intent.series[:4])}")
    if intent.disliked:
        parts.append(f"disliked: {', '.join(title_of(i) for i in intent.disliked[-4:])}")
    return "; ".join(parts)
