"""The reward critic: scores draft keywords with the three rewards and says what to fix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmsrarec.critic.rewards import (
    RAW_KEYS,
    RewardWeights,
    TextEncoder,
    completion_keywords,
    length_reward,
    make_info_reward,
    make_recon_reward,
    normalise,
    weighted_total,
)
from mmsrarec.data import Item
from mmsrarec.models import LLM
from mmsrarec.summarization.parse import MAX_KEYWORDS, MIN_KEYWORDS
from mmsrarec.types import Judgement

WEAK = 0.5  # a normalised info or recon score below this gets its own advice


class RewardCritic:
    """Implements the `Critic` protocol with `r_info`, `r_recon` and `r_len`.

    Args:
        encoder: phi of `r_info` (a `SentenceEncoder`).
        llm: The language model of `r_recon` (usually the summarizer's own).
        weights: Weights of the normalised rewards.
        threshold: Totals below this get feedback; the graph retries those items.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        llm: LLM,
        weights: RewardWeights | None = None,
        threshold: float = 0.6,
    ) -> None:
        self.weights = weights or RewardWeights()
        self.threshold = threshold
        self.vocab_size = len(llm.tokenizer)
        self.rewards = {
            "r_info": make_info_reward(encoder),
            "r_recon": make_recon_reward(llm),
            "r_len": length_reward,
        }
        self.name = f"reward-critic({getattr(encoder, 'name', 'encoder')}, {llm.name})"

    def judge(self, items: Sequence[Item], drafts: Mapping[str, list[str]]) -> dict[str, Judgement]:
        """A judgement per item id in `drafts` (each must be one of `items`)."""
        by_id = {item.item_id: item for item in items}
        unknown = [item_id for item_id in drafts if item_id not in by_id]
        if unknown:
            raise ValueError(f"drafts for items not given to the critic: {unknown}")
        ids = list(drafts)
        completions = [", ".join(drafts[item_id]) for item_id in ids]
        description = [by_id[item_id].text for item_id in ids]
        scores = {
            name: reward(completions, description=description)
            for name, reward in self.rewards.items()
        }
        counts = [len(k) for k in completion_keywords(completions, None)]
        judgements: dict[str, Judgement] = {}
        for row, item_id in enumerate(ids):
            raw = {name: scores[name][row] for name in RAW_KEYS}
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
    if n_keywords and scaled["info"] < WEAK:
        notes.append("keywords miss the description's content: name its subject and genre")
    if n_keywords and scaled["recon"] < WEAK:
        notes.append("keywords make the description hard to reconstruct: use its own words")
    if not notes:  # below the threshold without one clear cause: name the weakest part
        weakest = min(("info", "recon"), key=lambda key: scaled[key])
        notes.append(
            "keywords miss the description's content: name its subject and genre"
            if weakest == "info"
            else "keywords make the description hard to reconstruct: use its own words"
        )
    return "; ".join(notes)
