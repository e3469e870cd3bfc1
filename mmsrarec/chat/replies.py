"""What the chat writes: the one-line reason per pick, the options of a clarifying question,
and the reply text. Pure functions over item facts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mmsrarec.types import Recommendation

ASK_FOR_TASTE = (
    "Tell me a film or two you liked, or what you are in the mood for "
    "(for example: 'a romantic comedy from the 90s', 'loved Alien, want something tense "
    "but not gory')."
)
HELP = "You can name a film, a genre, a decade, or say 'older', 'less violent', 'start over'."


@dataclass(frozen=True)
class Facts:
    """What the catalog knows of one item."""

    item_id: str
    title: str
    year: int | None
    genres: tuple[str, ...]
    popularity: int  # training interactions


def option_labels(options: Sequence[Facts]) -> list[str]:
    """Labels that tell same-titled items apart: the title (with its year) and, when that is
    not enough, the genres if they differ, else the item id and how many rated it."""
    labels = []
    for facts in options:
        others = [o for o in options if o.item_id != facts.item_id]
        label = facts.title
        if any(o.title == facts.title for o in others):  # the year does not tell them apart
            if any(o.genres != facts.genres for o in others):
                label += f", {', '.join(facts.genres) or 'no genre'}"
            else:
                label += f", item {facts.item_id}, rated by {facts.popularity}"
        elif any(o.genres != facts.genres for o in others) and facts.genres:
            label += f", {', '.join(facts.genres)}"
        labels.append(label)
    return labels


def same_film(options: Sequence[Facts]) -> bool:
    """True when catalog entries share title, year and genres: one film listed twice (ML-100K
    has 18 such pairs), so asking which one is meant has no answer."""
    return len({(o.title, o.genres) for o in options}) == 1


def reason(
    facts: Facts,
    wanted_genres: Sequence[str],
    soft: dict[str, tuple[str, float]],
    chosen_by_similar: bool,
    liked_titles: Sequence[str],
) -> str:
    """One line naming what matched, e.g. `romance + comedy · 1993 · close to 'tense'
    (0.61) · picked for fans of Alien (1979)`."""
    matched = [g for g in wanted_genres if g in facts.genres]
    genres = matched or list(facts.genres[:3])
    parts = [" + ".join(g.lower() for g in genres)] if genres else []
    if facts.year is not None:
        parts.append(str(facts.year))
    if facts.item_id in soft:
        wish, similarity = soft[facts.item_id]
        parts.append(f"close to '{wish}' ({similarity:.2f})")
    if chosen_by_similar:
        parts.append("similar users chose it next")
    if liked_titles:
        parts.append(f"picked for fans of {', '.join(liked_titles[-2:])}")
    else:
        parts.append(f"popular ({facts.popularity} ratings)")
    return " · ".join(parts)


def reply_text(
    intent_line: str,
    relaxed: Sequence[str],
    recommendations: Sequence[Recommendation],
    note: str = "",
) -> str:
    """The reply: the intent line, a note (nothing usable was asked: where the picks come
    from), what was relaxed, then each pick once with its reason."""
    lines = [intent_line, *([note] if note else [])]
    if relaxed:
        lines.append(f"Too few matches, so I dropped: {'; then '.join(relaxed)}.")
    if recommendations:
        lines += [
            f"{n}. {r['title']} — {r['evidence']}" for n, r in enumerate(recommendations, start=1)
        ]
    else:
        lines.append("Nothing in the catalog fits all of that. " + HELP)
    return "\n".join(lines)
