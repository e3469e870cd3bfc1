"""Turn a model's free-text answer into a clean keyword list.

Rules, in order (each is tested in `tests/test_summarization.py`):

1. Cut the answer at the first special/role token (`<|im_end|>`, `<end_of_utterance>`, ...)
   or item tag (`<item>`), at the first blank line, and at the first line that starts a new
   turn or a new item (`user:`, `assistant:`, `item:`, ...): small models often go on to
   invent the next example, and nothing after that point describes this item.
2. Drop a leading `Keywords:` label and list marks at line starts (`-`, `*`, `•`, `1.`,
   `2)`), then split on commas, semicolons, `|`, bullets, newlines and sentence ends (`. `).
3. Per keyword: lowercase; keep what follows an inner label (`genre: comedy` -> `comedy`);
   replace quotes and brackets by spaces; collapse whitespace; strip punctuation at both
   ends; keep at most `MAX_WORDS` words and `MAX_CHARS` characters (cut at a word
   boundary). Empty keywords and stopword-only ones (`the`, from `Godfather, The`) go.
4. De-duplicate, keeping the first occurrence; near-duplicates that differ only in
   punctuation, case or a final "s" count as one. Keep at most `max_keywords`.

Fewer than `MIN_KEYWORDS` keywords are returned as they are (possibly none): the parser
does not invent words. The critic's length reward penalises short lists, and the rewards
parse with `max_keywords=None` so that an over-long answer is seen (and penalised) at its
true length instead of being silently truncated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MIN_KEYWORDS = 3  # the length reward's target range starts here
MAX_KEYWORDS = 8  # ... and ends here; also the default cap of `parse_keywords`
MAX_WORDS = 4  # words per keyword
MAX_CHARS = 40  # characters per keyword

# `<|im_end|>`, `<|endoftext|>`, `<end_of_utterance>`, `</s>`, `<eos>`, `<start_of_turn>`, ...
_SPECIAL = re.compile(
    r"<\|[^|>]*\|>|</?s>|<eos>|<bos>|<end_of_utterance>|<(?:start|end)_of_turn>|</?item>"
)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_ROLE_LINE = re.compile(
    r"^\s*(?:system|user|assistant|human|ai|item|text|title|description|model)\s*:",
    re.IGNORECASE | re.MULTILINE,
)
_LABEL = re.compile(r"^\s*(?:keywords?|tags?|answer)\s*:\s*", re.IGNORECASE)
_LIST_MARK = re.compile(r"^[ \t]*(?:[-*•·]|\d{1,2}[.)])[ \t]+", re.MULTILINE)
# A sentence end, but not the dot of `mr.`, `dr.`, `st.`, `vs.`, ...
_SPLIT = re.compile(
    r"[,;|\n•]|(?<!\bmr)(?<!\bmrs)(?<!\bms)(?<!\bdr)(?<!\bst)(?<!\bjr)(?<!\bvs)\.(?:\s+|$)",
    re.IGNORECASE,
)
_BRACKETS = re.compile(r"[()\[\]{}<>\"“”`]")
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")  # punctuation and quotes at either end
_SPACE = re.compile(r"\s+")
_NOT_ALNUM = re.compile(r"[\W_]+")
_STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "by", "for", "from", "in", "is", "it", "of", "on"]
    + ["or", "the", "to", "with"]
)


def answer_part(text: str) -> str:
    """The part of a model's answer that can describe the item (rule 1)."""
    text = text.lstrip()
    for pattern in (_SPECIAL, _BLANK_LINE):
        match = pattern.search(text)
        if match:
            text = text[: match.start()]
    match = _ROLE_LINE.search(text)
    if match:
        text = text[: match.start()]
    return text


def clean_keyword(raw: str) -> str:
    """One keyword, normalised and bounded (rule 3); "" when nothing is left."""
    keyword = _BRACKETS.sub(" ", raw.lower()).rsplit(": ", 1)[-1]  # "genre: comedy" -> "comedy"
    keyword = _EDGE.sub("", _SPACE.sub(" ", keyword).strip())
    words = keyword.split(" ")[:MAX_WORDS]
    keyword = " ".join(words)
    if len(keyword) > MAX_CHARS:
        cut = keyword[:MAX_CHARS]
        keyword = cut.rsplit(" ", 1)[0] if " " in cut else cut
    keyword = _EDGE.sub("", keyword)
    return "" if all(word in _STOPWORDS for word in keyword.split()) else keyword


def same_keyword_key(keyword: str) -> str:
    """What two keywords must share to count as duplicates: letters and digits only (any
    script), without a final "s" (`children's`, `childrens` and `children` are one)."""
    return _NOT_ALNUM.sub("", keyword.lower()).removesuffix("s")


def dedupe(keywords: Iterable[str], limit: int | None = MAX_KEYWORDS) -> list[str]:
    """Non-empty keywords in first-seen order without near-duplicates, at most `limit`
    (None: no limit)."""
    kept: dict[str, str] = {}
    for keyword in keywords:
        key = same_keyword_key(keyword)
        if key and key not in kept:
            kept[key] = keyword
            if limit is not None and len(kept) >= limit:
                break
    return list(kept.values())


def parse_keywords(text: str, max_keywords: int | None = MAX_KEYWORDS) -> list[str]:
    """Keywords from a model's answer (rules in the module docstring).

    Args:
        text: The generated text (the completion only, not the prompt).
        max_keywords: Keep at most this many; None keeps all (the rewards use that).

    Returns:
        Lowercase keywords, each at most 4 words / 40 characters, unique, in answer order.
    """
    body = _LIST_MARK.sub("", _LABEL.sub("", answer_part(text)))
    return dedupe((clean_keyword(piece) for piece in _SPLIT.split(body)), max_keywords)


def merge_keywords(
    text_keywords: list[str], image_keywords: list[str], limit: int = MAX_KEYWORDS
) -> list[str]:
    """Join text and image keywords by taking one from each in turn (text first).

    Alternating keeps both modalities in the list when the cap bites: appending would drop
    every image keyword whenever the text alone fills the list.
    """
    interleaved = []
    for index in range(max(len(text_keywords), len(image_keywords))):
        interleaved += [kw[index] for kw in (text_keywords, image_keywords) if index < len(kw)]
    return dedupe(interleaved, limit)
