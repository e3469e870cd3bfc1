"""What a message asks of the recommender itself, beside the request (`rules.py`):

- "why?", "why the second one?": the evidence of the last picks (`why_text`);
- "what do you think I like?", "my profile": the motivations (`profile_text`);
- "less mainstream", "hidden gems": the popularity-bias control on (`ChatSettings.less_mainstream`),
  "more popular", "mainstream is fine": back to the run's default;
- "not into horror any more", "I'm done with westerns": a motivation corrected; its words
  leave the profile, and the liked titles behind it leave the history the ranker reads.

Pure functions over text and typed values; no model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mmsrarec.chat.intent import Intent
from mmsrarec.chat.lexicon import ORDINALS
from mmsrarec.scoring.evidence import tokens
from mmsrarec.types import Motivation, Recommendation

WHY = re.compile(r"\bwhy\b(?:.*?\b(first|second|third|fourth|fifth|last)\b|.*?#\s*(\d))?")
PROFILE = re.compile(
    r"\b(?:what (?:do )?(?:you )?(?:think )?i (?:like|am into|'?m into)|my (?:profile|"
    r"motivations?|tastes?)|what am i into)\b"
)
LESS = re.compile(
    r"\b(?:less (?:mainstream|popular|obvious|known)|hidden gems?|lesser[- ]known|"
    r"under-?rated|obscure|off the beaten)\b"
)
MORE = re.compile(r"\b(?:more (?:mainstream|popular)|mainstream is fine|popular ones)\b")
NOT_INTO = re.compile(
    r"\b(?:(?:not|no longer|never) (?:really |that )?into|(?:i'?m |i am )?(?:done with|over|"
    r"tired of|sick of)) ([a-z' -]+?)(?: any ?more\b|[,.;!?]|$)"
)


@dataclass
class Asks:
    """What one message asks of the recommender itself."""

    why: int | None = None  # 0 = all of the last picks, n = the n-th, -1 = the last one
    profile: bool = False
    debias: bool | None = None  # True = less mainstream, False = back to the default
    not_into: list[str] = field(default_factory=list)

    def changes_intent(self) -> bool:
        return self.debias is not None or bool(self.not_into)


def read_asks(text: str) -> Asks:
    """Read `text` (any case)."""
    text = text.lower().replace("’", "'")
    asks = Asks()
    if found := WHY.search(text):
        word, digit = found.group(1), found.group(2)
        asks.why = ORDINALS[word] if word else int(digit) if digit else 0
    asks.profile = bool(PROFILE.search(text))
    if LESS.search(text):
        asks.debias = True
    elif MORE.search(text):
        asks.debias = False
    for found in NOT_INTO.finditer(text):
        asks.not_into += sorted(tokens(found.group(1)), key=found.group(1).find)
    return asks


def apply_asks(intent: Intent, asks: Asks, less_mainstream: float) -> Intent:
    """The intent with the debiasing choice and the corrected motivations."""
    update: dict = {}
    if asks.debias is not None:
        update["debias"] = less_mainstream if asks.debias else None
    if asks.not_into:
        update["not_into"] = list(dict.fromkeys([*intent.not_into, *asks.not_into]))
    return intent.model_copy(update=update)


def why_text(picks: Sequence[Recommendation], which: int, title_of: Callable[[str], str]) -> str:
    """The evidence of the last picks (all, or the `which`-th), the cause first."""
    if not picks:
        return "I have not recommended anything yet in this conversation."
    chosen = list(picks)
    if which != 0:
        index = which if which < 0 else which - 1
        if not -len(picks) <= index < len(picks):
            return f"There were only {len(picks)} picks."
        chosen = [picks[index]]
    return "\n".join(f"{pick['title']}: {_why(pick, title_of)}" for pick in chosen)


def _why(pick: Recommendation, title_of: Callable[[str], str]) -> str:
    parts = []
    if pick["cited_history"]:
        named = ", ".join(title_of(i) for i in pick["cited_history"])
        parts.append(f"without {named} it would rank lower (the ranker's reason)")
    else:
        parts.append("no liked title moves its score (it is here for the conditions you set)")
    if len(pick["contributions"]) > 1:
        parts.append("score parts: " + ", ".join(f"{name} {value:.3f}" for name, value
                                                in pick["contributions"].items()))  # fmt: skip
    support = [*pick["supporting_keywords"], *pick["supporting_users"]]
    if support:
        parts.append("supporting, not the cause: " + "; ".join(support))
    return "; ".join(parts)


def profile_text(motivations: Sequence[Motivation], not_into: Sequence[str]) -> str:
    """The motivations in a few lines, with what the user corrected."""
    if not motivations:
        text = "I do not know your tastes yet: tell me a film or two you liked."
    else:
        lines = [f"- {', '.join(m['keywords'])} ({m['weight']:.0%}): {', '.join(m['titles'])}"
                 for m in motivations]  # fmt: skip
        text = "What seems to move you, from the titles you liked:\n" + "\n".join(lines)
    if not_into:
        text += f"\n(no longer: {', '.join(not_into)})"
    return text + "\nSay 'not into X any more' to correct it."
