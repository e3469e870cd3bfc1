"""The packaged LLM reads a message into the intent's genre and year fields, by constrained
decoding: its output is always valid JSON of one schema,

    {"genres": [G, ...], "avoid_genres": [G, ...], "year_min": Y | null, "year_max": Y | null}

with G one of the catalog's genres (each at most once, at most `MAX_GENRES` per list) and Y a
year of the catalog's span. At each step the model picks, by the log-probability of the
whole continuation, among the continuations the schema allows there (a genre not yet listed,
or "]"; "null" or a decade, then a year of it); the text so far and every allowed
continuation run in one forward pass (`scoring.packed`).

How the chat uses it is `ChatSettings.intent_reader`: `rules` (never), `llm` (its fields
replace the rules' genres and years; titles stay the rules'), `both` (only where the rules are
unsure: the message has words they could not read). `benchmarks/conversation_families.py
--reader` measures the three on the measurement families.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from mmsrarec.chat.rules import Parsed
from mmsrarec.chat.years import YearCondition, YearSpan
from mmsrarec.models.llm import LLM
from mmsrarec.scoring.packed import Encoded, pack
from mmsrarec.scoring.yes_no import encode_prefix, encode_suffix

MAX_GENRES = 3
SYSTEM = (
    "You read a request for a film into JSON. genres: the genres asked for. avoid_genres: "
    "the genres the user does not want. year_min / year_max: the earliest / latest release "
    "year allowed, or null. Genres: {genres}."
)
# Few-shot examples, phrased as the development families are (never the measurement ones).
EXAMPLES = (
    ("a comedy from the 90s", ["Comedy"], [], 1990, 1999),
    ("a thriller but no horror", ["Thriller"], ["Horror"], None, None),
    ("not a drama, a western before 1970", ["Western"], ["Drama"], None, 1969),
    ("something scary", ["Horror"], [], None, None),
    ("a romance after 1985", ["Romance"], [], 1986, None),
)


@dataclass
class LLMIntent:
    """The LLM's reading of one message."""

    genres: list[str] = field(default_factory=list)
    avoid_genres: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None


def rules_unsure(parsed: Parsed, mood_words: set[str]) -> bool:
    """The rules understood nothing, or left words they could not read (not even as moods)."""
    left = set(parsed.unknown) | set(parsed.avoid_unknown)
    return not parsed.understood() or bool(left - mood_words)


def merged(parsed: Parsed, read: LLMIntent, replace: bool) -> Parsed:
    """`parsed` with the LLM's genre and year fields: all of them (`replace`), or only those
    the rules left empty."""
    years = (
        [YearCondition(YearSpan(read.year_min, read.year_max))]
        if read.year_min is not None or read.year_max is not None
        else []
    )
    if replace:
        parsed.genres, parsed.avoid_genres, parsed.years = read.genres, read.avoid_genres, years
        parsed.wishes, parsed.unknown, parsed.avoid_unknown = [], [], []  # no mood genres
        return parsed
    parsed.genres = parsed.genres or read.genres
    parsed.avoid_genres = parsed.avoid_genres or read.avoid_genres
    parsed.years = parsed.years or years
    return parsed


def _json(genres, avoid, low, high) -> str:
    return json.dumps({"genres": genres, "avoid_genres": avoid, "year_min": low, "year_max": high})


class LLMIntentReader:
    """Fills `LLMIntent` for a message with the chat LLM (see the module docstring)."""

    def __init__(self, llm: LLM, genres: Sequence[str], span: tuple[int, int]) -> None:
        self.llm = llm
        self.genres = sorted(genres)
        self.span = span
        self.name = f"{llm.name} (constrained JSON)"

    def _prompt(self, message: str) -> str:
        messages = [{"role": "system", "content": SYSTEM.format(genres=", ".join(self.genres))}]
        for text, genres, avoid, low, high in EXAMPLES:
            if set(genres) | set(avoid) <= set(self.genres):
                messages.append({"role": "user", "content": text})
                messages.append({"role": "assistant", "content": _json(genres, avoid, low, high)})
        messages.append({"role": "user", "content": message})
        return self.llm.render_prompt(messages)

    def read(self, message: str) -> LLMIntent:
        state = _Decoding(self, self._prompt(message) + '{"genres":')
        genres = state.genre_list([])
        state.text += ' "avoid_genres":'
        avoid = state.genre_list(genres)
        state.text += ' "year_min":'
        low = state.year(None)
        state.text += ', "year_max":'
        high = state.year(low)
        return LLMIntent(genres, avoid, low, high)


@dataclass
class _Decoding:
    """One message's decoding: the prompt and the JSON written so far. Options are cut where
    the tokenizer cuts the JSON (`["War"],` is ` ["`, `War`, `"],`), so that each is scored as
    the model would write it."""

    reader: LLMIntentReader
    text: str

    def genre_list(self, taken: list[str]) -> list[str]:
        """A JSON list of genres and the comma after it."""
        chosen: list[str] = []
        while len(chosen) < MAX_GENRES:
            lead = '", "' if chosen else ' ["'
            left = [g for g in self.reader.genres if g not in chosen and g not in taken]
            options = [f"{lead}{g}" for g in left]
            close = '"],' if chosen else " [],"
            pick = self.choose([*options, close])
            self.text += pick
            if pick == close:
                return chosen
            chosen.append(left[options.index(pick)])
        self.text += '"],'
        return chosen

    def year(self, low: int | None) -> int | None:
        """A year of the span (or null), written digit by digit: the century and decade, then
        the year (two smaller choices instead of one over every year)."""
        first, last = self.reader.span
        decades = sorted({y // 10 for y in range(max(first, low or first), last + 1)})
        pick = self.choose([" null", *(f" {d}" for d in decades)])
        self.text += pick
        if pick == " null":
            return None
        decade = int(pick)
        years = [y for y in range(decade * 10, decade * 10 + 10) if first <= y <= last]
        years = [y for y in years if low is None or y >= low]
        digit = self.choose([str(y % 10) for y in years])
        self.text += digit
        return decade * 10 + int(digit)

    @torch.inference_mode()
    def choose(self, options: Sequence[str]) -> str:
        """The option with the highest log-probability after the text so far (the prompt and
        every option in one forward, `scoring.packed`)."""
        tokenizer, model = self.reader.llm.tokenizer, self.reader.llm.model
        prefix = encode_prefix(tokenizer, self.text)
        suffixes = [encode_suffix(tokenizer, o) for o in options]
        packed = pack(
            Encoded(prefix, [0] * len(prefix)), [Encoded(s, [0] * len(s)) for s in suffixes]
        )
        blocked = torch.finfo(torch.float32).min
        mask = torch.zeros(packed.mask.shape).masked_fill(~packed.mask, blocked)
        logp = (
            model(
                input_ids=packed.ids.unsqueeze(0),
                attention_mask=mask[None, None],  # [1, 1, L, L]: used as given
                position_ids=packed.positions.unsqueeze(0),
                use_cache=False,
            )
            .logits[0]
            .float()
            .log_softmax(-1)
        )  # [L, vocab]
        scores, start = [], len(prefix)
        for ids in suffixes:
            # token 0 follows the prefix's last position; token j follows the suffix's j-1
            rows = [len(prefix) - 1, *range(start, start + len(ids) - 1)]
            scores.append(float(sum(logp[r, t] for r, t in zip(rows, ids, strict=True))))
            start += len(ids)
        return options[max(range(len(options)), key=scores.__getitem__)]
