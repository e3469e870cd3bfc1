"""When a keyword answer is over: one rule and one token budget for inference and GRPO.

Greedy inference (`LLMSummarizer.generate`) stops a row as soon as `answered` holds for its
text; GRPO (`training.summarizer`) cuts each sampled completion at the same point
(`stop_length`), so the policy is trained on exactly the answers inference would produce.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mmsrarec.summarization.parse import clean_keyword, same_keyword_key

MAX_NEW_TOKENS = 40  # generation budget per answer; 8 keywords take about 30 tokens
_PIECES = re.compile(r"[,;]")


def answered(text: str, max_keywords: int) -> bool:
    """True after a newline that follows some text, once a keyword repeats, or once more than
    `max_keywords` complete keywords are out (a small model's way of running on)."""
    text = text.lstrip()
    if "\n" in text:
        return True
    complete = [clean_keyword(piece) for piece in _PIECES.split(text)[:-1]]
    keys = [same_keyword_key(keyword) for keyword in complete if keyword]
    return len(set(keys)) < len(keys) or len(keys) > max_keywords


def stop_length(
    token_ids: Sequence[int], tokenizer: Any, max_keywords: int, budget: int = MAX_NEW_TOKENS
) -> int:
    """How many of `token_ids` (a sampled answer) make the answer inference would keep.

    Inference stops once `answered` holds; an answer that used the whole `budget` without
    ending (no stop, no special token) loses its last, probably cut-off, keyword, so it
    ends at its last separator here too.
    """
    ids = list(token_ids)
    for length in range(1, len(ids) + 1):
        if answered(tokenizer.decode(ids[:length], skip_special_tokens=True), max_keywords):
            return length
    if len(ids) < budget or set(ids) & set(tokenizer.all_special_ids):
        return len(ids)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    last = max(text.rfind(","), text.rfind(";"))
    if last <= 0:
        return len(ids)
    for length in range(1, len(ids) + 1):  # the first prefix that holds the last separator
        if len(tokenizer.decode(ids[:length], skip_special_tokens=True)) > last:
            return length
    return len(ids)
