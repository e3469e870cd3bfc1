"""Item text is data: the one sanitizer every prompt puts catalog text through.

Titles, descriptions, keywords and summaries reach the summarizer's, the critic's and the
recommender's prompts between tags (`<item>...</item>`, `<candidate>`, `<summary>`). A
catalog entry must not be able to close its block, open a chat turn or fake an answer line,
so `sanitize`:

- turns control and separator characters (newlines, tabs, zero-width and bidi marks) into
  spaces, so the text stays on one line;
- removes the prompt's own tags, the candidate marker and every special or added token of
  the tokenizer (`<|im_end|>`, `<start_of_turn>`), repeating until nothing is left, because
  removing one token can join the pieces of another;
- folds white space and cuts the text at `limit` characters (with an ellipsis).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

# Tags that delimit data in our prompts, with any white space inside: `< /item >` too.
TAGS = re.compile(r"<\s*/?\s*(?:item|candidate|summary|keywords)\s*>", re.IGNORECASE)
# Where the recommendation prompt's candidate goes (`scoring.prompts`); never left in a prompt.
MARKER = "\u27e6MMSRAREC-CANDIDATE\u27e7"
ELLIPSIS = "\u2026"


@functools.lru_cache(maxsize=8)
def forbidden_pattern(tokenizer: Any | None) -> re.Pattern[str]:
    """One pattern for the prompt's tags, the candidate marker and the tokenizer's special
    and added tokens (Gemma 3 has about 6,250), longest first."""
    tokens: set[str] = set()
    if tokenizer is not None:
        tokens |= {str(token) for token in tokenizer.all_special_tokens}
        tokens |= {str(token) for token in tokenizer.get_added_vocab()}
    ordered = sorted((t for t in tokens if len(t) > 1), key=len, reverse=True)
    return re.compile("|".join([TAGS.pattern, re.escape(MARKER), *map(re.escape, ordered)]), re.I)


def sanitize(text: str, limit: int, tokenizer: Any | None = None) -> str:
    """`text` made safe to embed in a prompt.

    Args:
        text: Catalog text (a title, a description, a keyword, a summary sentence).
        limit: Most characters kept; longer text is cut and ends with an ellipsis.
        tokenizer: The prompt's tokenizer, whose special and added tokens are removed;
            None removes only the tags and the marker (plain-text prompts).

    Returns:
        One line without tags, marker or special tokens, at most `limit` characters.
    """
    forbidden = forbidden_pattern(tokenizer)
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    previous = None
    while previous != text:  # removing one token may join the pieces of another
        previous, text = text, forbidden.sub("", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def encoding_problem(text: str) -> str | None:
    """What makes `text` unencodable as UTF-8 (its first lone surrogate), or None.

    A JSON body may carry `"\\ud800"` and a command line bytes that are not UTF-8 (Python
    keeps them as surrogates `\\udc80`-`\\udcff`); either would crash a turn later, where its
    trace is hashed or stored, so the API and the CLI refuse such text where it comes in.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"U+{ord(text[exc.start]):04X} at character {exc.start + 1} is a lone surrogate"
    return None
