"""Why a candidate was ranked where it was: the keywords it shares with the user's context.

Overlap is by tokens: lower-cased words (hyphenated words such as "sci-fi" stay whole), with
English stopwords and words that describe every catalog entry ("film", "genres") ignored. A
history keyword supports a candidate when one of its tokens occurs in the candidate's text or
keywords. The string says only what overlaps; it is not the model's reasoning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mmsrarec.data import Item
from mmsrarec.types import SimilarUser

WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# English function words, and words that describe every catalog entry.
_STOPWORD_TEXT = (
    "a an and are as at be but by for from has have he her his in into is it its of on or "
    "our she so than that the their them then there these they this to was were which while "
    "who will with you your not no yes all any some more most other such only own same very "
    "can just also about after before over under again film films movie movies genre genres "
    "item items"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
MAX_KEYWORDS = 5  # history keywords named
MAX_TITLES = 2  # history titles named per keyword
MAX_USERS = 3  # similar users named
NO_OVERLAP = "no keyword overlap"


def tokens(text: str) -> set[str]:
    """Content words of `text`: lower-cased, stopwords and one-letter words dropped."""
    return {w for w in WORD.findall(text.lower()) if len(w) > 1 and w not in STOPWORDS}


def _history_part(wanted: set[str], history: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    support: dict[str, list[str]] = {}  # keyword (lower-cased) -> titles, in history order
    shown: dict[str, str] = {}  # lower-cased keyword -> first spelling seen
    for title, keywords in history:
        for keyword in keywords:
            key = keyword.strip().lower()
            if not key or not tokens(keyword) & wanted:
                continue
            shown.setdefault(key, keyword.strip())
            titles = support.setdefault(key, [])
            if title not in titles:
                titles.append(title)
    # Keywords backed by more history items first; ties keep history order.
    ranked = sorted(support, key=lambda key: -len(support[key]))[:MAX_KEYWORDS]
    parts = []
    for key in ranked:
        titles = support[key]
        names = ", ".join(titles[:MAX_TITLES]) + (", ..." if len(titles) > MAX_TITLES else "")
        parts.append(f"{shown[key]} ({names})")
    return parts


def _collaborative_part(
    candidate: Item, wanted: set[str], collaborative: Sequence[SimilarUser]
) -> list[str]:
    parts = []
    for user in collaborative:
        if user["next_item_id"] == candidate.item_id:
            parts.append(f"{user['next_title']} (this item)")
            continue
        shared = [k for k in user["keywords"] if tokens(k) & wanted]
        if shared:
            parts.append(f"{user['next_title']} ({', '.join(dict.fromkeys(shared))})")
    return list(dict.fromkeys(parts))[:MAX_USERS]


def evidence_for(
    candidate: Item,
    candidate_keywords: Sequence[str] | None,
    history: Sequence[tuple[str, Sequence[str]]],
    collaborative: Sequence[SimilarUser],
) -> str:
    """A short account of which context keywords overlap the candidate.

    Args:
        candidate: The candidate item (its title and text are matched).
        candidate_keywords: The candidate's own keywords when summarised, else None.
        history: `(title, keywords)` of the user's recent items.
        collaborative: Similar users; their next item's keywords are matched, and a user whose
            next item is the candidate itself is named as such.

    Returns:
        E.g. `"matches history: sci-fi (Star Wars, Alien), space (Star Wars); similar users
        chose: Aliens (sci-fi)"`, or `"no keyword overlap"`.
    """
    wanted = tokens(f"{candidate.title} {candidate.text}")
    for keyword in candidate_keywords or ():
        wanted |= tokens(keyword)
    sections = []
    if matches := _history_part(wanted, history):
        sections.append("matches history: " + ", ".join(matches))
    if chosen := _collaborative_part(candidate, wanted, collaborative):
        sections.append("similar users chose: " + ", ".join(chosen))
    return "; ".join(sections) or NO_OVERLAP
