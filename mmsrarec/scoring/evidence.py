"""Evidence for a recommendation: the cause, measured on the scorer, then supporting words.

The cause comes from the scorer and is passed in: each part of the score
(`Recommender.contributions`) and the history items whose removal lowers it most
(`recommenders.explain`). The words only support it: keywords the candidate shares with the
cited history items (with the items in the prompt where nothing was cited: the yes/no
scorer), and similar users who chose it or whose next item shares its words. They overlap the
candidate, which does not make them the ranker's reason; `evidence_line` says so.

Overlap is by tokens: lower-cased words (hyphenated words such as "sci-fi" stay whole), with
English stopwords and words that describe every catalog entry ("film", "genres") ignored. A
history keyword supports a candidate when one of its tokens occurs in the candidate's text or
keywords.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from mmsrarec.data import Item
from mmsrarec.types import Evidence, SimilarUser

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


def text_keywords(item: Item) -> list[str]:
    """The words of an item's own text that are not in its title, numbers left out (the
    genres on ML-100K): its keywords where no summarizer wrote any."""
    words = tokens(item.text) - tokens(item.title)
    return sorted((w for w in words if not w.isdigit()), key=item.text.lower().find)


def build_evidence(
    candidate: Item,
    candidate_keywords: Sequence[str] | None,
    support: Sequence[tuple[str, Sequence[str]]],
    collaborative: Sequence[SimilarUser],
    contributions: Mapping[str, float],
    cited: Sequence[tuple[str, float]] = (),
) -> Evidence:
    """The evidence for one candidate.

    Args:
        candidate: The candidate item (its title and text are matched).
        candidate_keywords: The candidate's own keywords when summarised, else None.
        support: `(title, keywords)` of the items whose words may support it: the cited
            history items, or the prompt's recent items where nothing was cited.
        collaborative: Similar users; their next item's keywords are matched, and a user whose
            next item is the candidate itself is named as such.
        contributions: The candidate's score in parts (`Recommender.contributions`).
        cited: `(raw item id, drop)` of the history items whose removal lowers the score
            most, best first (`recommenders.explain`); empty where not computed.
    """
    wanted = tokens(f"{candidate.title} {candidate.text}")
    for keyword in candidate_keywords or ():
        wanted |= tokens(keyword)
    return Evidence(
        contributions={name: float(value) for name, value in contributions.items()},
        cited_history=[item_id for item_id, _ in cited],
        cited_drops=[float(drop) for _, drop in cited],
        supporting_keywords=_history_part(wanted, support),
        supporting_users=_collaborative_part(candidate, wanted, collaborative),
    )


def evidence_line(evidence: Evidence, title_of: Callable[[str], str]) -> str:
    """The evidence in one line, the cause first, e.g. `without Star Wars (1977) -0.41, Alien
    (1979) -0.22 · parts: sasrec 0.91, item-knn 0.62 · supporting, not the cause: matches
    history: sci-fi (Star Wars (1977)); similar users chose: Aliens (1986) (sci-fi)`."""
    sections = []
    if evidence["cited_history"]:
        pairs = zip(evidence["cited_history"], evidence["cited_drops"], strict=True)
        sections.append("without " + ", ".join(f"{title_of(i)} -{d:.2f}" for i, d in pairs))
    if len(evidence["contributions"]) > 1:
        parts = evidence["contributions"].items()
        sections.append("parts: " + ", ".join(f"{name} {value:+.2f}" for name, value in parts))
    words = []
    if evidence["supporting_keywords"]:
        words.append("matches history: " + ", ".join(evidence["supporting_keywords"]))
    if evidence["supporting_users"]:
        words.append("similar users chose: " + ", ".join(evidence["supporting_users"]))
    sections.append("supporting, not the cause: " + ("; ".join(words) or NO_OVERLAP))
    return " · ".join(sections)
