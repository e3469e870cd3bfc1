"""The reward critic: scores draft keywords with the rewards and says what to fix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mmsrarec.critic.collab import CollabTargets
from mmsrarec.critic.rewards import (
    RewardWeights,
    TextEncoder,
    completion_keywords,
    describe_total,
    make_rewards,
    normalise,
    raw_scores,
    weighted_total,
)
from mmsrarec.data import Item
from mmsrarec.models import LLM
from mmsrarec.summarization.parse import MAX_KEYWORDS, MIN_KEYWORDS
from mmsrarec.types import Judgement

WEAK = 0.5  # a normalised info, recon or collab score below this gets its own advice
ADVICE = {
    "info": "keywords miss the description's content: name its subject and genre",
    "recon": "keywords make the description hard to reconstruct: use its own words",
    "collab": "keywords miss what its audience shares: name the themes and moods it has in "
    "common with related titles",
}


class RewardCritic:
    """Implements the `Critic` protocol with `r_info`, `r_recon`, `r_len` and, given
    collaborative targets, `r_collab` (each called once per `judge`).

    Args:
        encoder: phi of `r_info` and `r_collab` (a `SentenceEncoder`).
        llm: The language model of `r_recon` (usually the summarizer's own).
        weights: Weights of the normalised rewards.
        threshold: Totals below this get feedback; the graph retries those items.
        collab: Targets of `r_collab` (`CollabTargets.from_dataset`); None leaves it out.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        llm: LLM,
        weights: RewardWeights | None = None,
        threshold: float = 0.6,
        collab: CollabTargets | None = None,
    ) -> None:
        self.weights = weights or RewardWeights()
        self.threshold = threshold
        self.vocab_size = len(llm.tokenizer)
        if collab is not None and self.weights.delta == 0:
            collab = None  # a zero weight: not worth encoding the targets
        self.rewards = make_rewards(encoder, llm, collab)
        self.name = f"reward-critic({getattr(encoder, 'name', 'encoder')}, {llm.name})"

    def describe(self) -> dict[str, Any]:
        """How it totals: `weighted_total`'s formula and weights, with the collaborative term
        where this critic scores it (`describe_total`)."""
        return describe_total(self.weights, collab="r_collab" in self.rewards)

    def judge(self, items: Sequence[Item], drafts: Mapping[str, list[str]]) -> dict[str, Judgement]:
        """A judgement per item id in `drafts` (each must be one of `items`)."""
        by_id = {item.item_id: item for item in items}
        unknown = [item_id for item_id in drafts if item_id not in by_id]
        if unknown:
            raise ValueError(f"drafts for items not given to the critic: {unknown}")
        ids = list(drafts)
        completions = [", ".join(drafts[item_id]) for item_id in ids]
        description = [by_id[item_id].text for item_id in ids]
        raws = raw_scores(self.rewards, completions, description, ids)
        counts = [len(k) for k in completion_keywords(completions, None)]
        judgements: dict[str, Judgement] = {}
        for row, item_id in enumerate(ids):
            raw = raws[row]
            scaled = normalise(raw, vocab_size=self.vocab_size)
            total = weighted_total(scaled, self.weights)
            advice = feedback(scaled, counts[row]) if total < self.threshold else ""
            judgements[item_id] = Judgement(total=total, components=raw, feedback=advice)
        return judgements


def feedback(scaled: Mapping[str, float], n_keywords: int) -> str:
    """What the summarizer should change, from the normalised scores and the keyword count.

    Never contains item text: it goes back into the next prompt as trusted advice.
    """
    notes = []
    if n_keywords == 0:
        notes.append(f"no keywords found; answer with {MIN_KEYWORDS} to {MAX_KEYWORDS} "
                     "comma-separated keywords")  # fmt: skip
    elif n_keywords < MIN_KEYWORDS:
        notes.append(f"too few keywords ({n_keywords}); give {MIN_KEYWORDS} to {MAX_KEYWORDS}")
    elif n_keywords > MAX_KEYWORDS:
        notes.append(f"too many keywords ({n_keywords}); use at most {MAX_KEYWORDS}")
    scored = [key for key in ("info", "recon", "collab") if key in scaled]
    if n_keywords:
        notes += [ADVICE[key] for key in scored if scaled[key] < WEAK]
    if not notes:  # below the threshold without one clear cause: name the weakest part
        notes.append(ADVICE[min(scored, key=lambda key: scaled[key])])
    return "; ".join(notes)
