"""The summarizer's verifiable rewards, as TRL reward functions, and their weighting.

Every reward is `f(completions, **kwargs) -> list[float]`, one float per completion, so the
very same callables score drafts in the graph (`RewardCritic`) and completions in TRL's
`GRPOTrainer` (through `make_total_reward`, which calls each of them once per batch). TRL
passes `prompts`, `completions`, `completion_ids`, `trainer_state`, `log_extra`,
`log_metric` and every dataset column by keyword; these rewards read `completions`, the
`description` column and (R_collab) the `item_id` column, and ignore the rest.
A completion is a string or a conversation (`[{"role": "assistant", "content": "..."}]`);
its keywords are `parse_keywords` of the text.

Raw rewards (METHOD.md):

- `r_info  = cos(phi(", ".join(keywords)), phi(description))`; 0.0 for no keywords.
- `r_recon = -exp(mean_j -log P(d_j | d_<j, RECON_PROMPT(keywords)))`, minus the perplexity
  of the description's tokens, teacher-forced after a fixed prompt holding the keywords.
- `r_len   = -len(keywords)`, counted without the summarizer's cap of 8.
- `r_collab` (ours, optional): how much closer the keywords are to the items the item's
  audience also chose than to random items (`critic.collab`, training interactions only).

`normalise` maps each to [0, 1] (higher is better) so that none dominates the weighted sum:

- info: `clip(r_info, 0, 1)`. Negative cosine means "unrelated" just as 0 does.
- recon: `1 - log(ppl) / log(V)`, clipped, V = the LM's vocabulary size. `log(ppl)` is the
  mean NLL in nats; `log(V)` is the NLL of a uniform guess. So 1 = the description is
  certain given the keywords, 0 = no better than random tokens. Unlike `1 / ppl` this
  stays spread out at realistic perplexities (ppl 10 -> 0.79, 100 -> 0.57 for V = 49152).
- len: a target range. 3..8 keywords score 1.0 down to 0.8 (fewer is still a little better,
  as the paper's `-|k|` wants, but any count in range beats a list out of it); below 3,
  `n / 3` (none = 0); above 8, falling linearly from 0.8 to 0 at 16.
- collab: `clip(0.5 + r_collab, 0, 1)`: 0.5 = no closer to co-chosen items than to random.

`weighted_total = sum(w_k * c_k) / sum(w_k)` over info (alpha), recon (beta), len (gamma)
and, where the critic has collaborative targets, collab (delta); in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mmsrarec.critic.collab import CollabTargets, collab_values
from mmsrarec.models import LLM
from mmsrarec.summarization.parse import MAX_KEYWORDS, MIN_KEYWORDS, parse_keywords

Completion = str | Sequence[Mapping[str, Any]]
RewardFunction = Callable[..., list[float]]

RECON_PROMPT = "Keywords: {keywords}\nDescription:"
MAX_NLL = 50.0  # nats; caps the perplexity at e^50 so that rewards stay finite
RAW_KEYS = ("r_info", "r_recon", "r_len")  # always scored; "r_collab" where targets exist
NORMALISED_KEYS = ("info", "recon", "len")


class TextEncoder(Protocol):
    """What `r_info` needs: `SentenceEncoder` or anything with unit-length `encode`."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


def completion_text(completion: Completion) -> str:
    """The text of a completion: the string itself, or a conversation's last message."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if not completion:
        return ""
    content = completion[-1].get("content", "")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def completion_keywords(
    completions: Sequence[Completion], max_keywords: int | None = MAX_KEYWORDS
) -> list[list[str]]:
    """Parsed keywords of each completion."""
    return [parse_keywords(completion_text(c), max_keywords) for c in completions]


def _descriptions(
    completions: Sequence[Completion], description: Sequence[str] | None
) -> list[str]:
    if description is None:
        raise ValueError("this reward needs the dataset column `description` (one per completion)")
    if isinstance(description, str) or len(description) != len(completions):
        raise ValueError(
            f"`description` must be a list with one text per completion; got "
            f"{1 if isinstance(description, str) else len(description)} for "
            f"{len(completions)} completions"
        )
    return [str(text) for text in description]


def _checked(name: str, rewards: list[float], completions: Sequence[Completion]) -> list[float]:
    if len(rewards) != len(completions):  # a bug here, not a user error
        raise RuntimeError(f"{name} returned {len(rewards)} rewards for {len(completions)}")
    return rewards


def make_info_reward(encoder: TextEncoder) -> RewardFunction:
    """`r_info(completions, description, **kwargs)`: cosine of keywords and description."""

    def r_info(
        completions: Sequence[Completion], description: Sequence[str] | None = None, **kwargs: Any
    ) -> list[float]:
        descriptions = _descriptions(completions, description)
        joined = [", ".join(keywords) for keywords in completion_keywords(completions)]
        rows = [i for i, text in enumerate(joined) if text]  # no keywords: reward 0
        rewards = [0.0] * len(completions)
        if rows:
            vectors = encoder.encode([joined[i] for i in rows] + [descriptions[i] for i in rows])
            keys, docs = vectors[: len(rows)], vectors[len(rows) :]  # [rows, dim] each
            for i, cosine in zip(rows, (keys * docs).sum(axis=1), strict=True):
                rewards[i] = float(cosine)
        return _checked("r_info", rewards, completions)

    return r_info


def make_recon_reward(
    llm: LLM, *, batch_size: int = 8, max_description_tokens: int = 256
) -> RewardFunction:
    """`r_recon(completions, description, **kwargs)`: minus the description's perplexity
    under `llm` after `RECON_PROMPT` with the keywords (teacher-forced, batched).

    An empty description has nothing to reconstruct: perplexity 1 (reward -1). Descriptions
    are cut to `max_description_tokens` tokens.
    """
    tokenizer, model = llm.tokenizer, llm.model

    def mean_nll(prompt_ids: list[list[int]], target_ids: list[list[int]]) -> list[float]:
        # Left padding aligns every row's end, so the last `k` positions hold all target
        # tokens and their predictions: only those logits are computed ([b, k, V]).
        length = max(len(p) + len(t) for p, t in zip(prompt_ids, target_ids, strict=True))
        keep = max(len(t) for t in target_ids) + 1
        pad = tokenizer.pad_token_id
        ids, mask, labels = [], [], []
        for p, t in zip(prompt_ids, target_ids, strict=True):
            fill = length - len(p) - len(t)
            ids.append([pad] * fill + p + t)
            mask.append([0] * fill + [1] * (len(p) + len(t)))
            labels.append([-100] * (fill + len(p)) + t)
        input_ids = torch.tensor(ids, device=model.device)
        attention = torch.tensor(mask, device=model.device)
        positions = (attention.cumsum(1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = model(
                input_ids=input_ids,
                attention_mask=attention,
                position_ids=positions,
                logits_to_keep=keep,
            ).logits  # [b, keep, V]
        gold = torch.tensor(labels, device=model.device)[:, length - keep + 1 :]  # [b, keep - 1]
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().transpose(1, 2), gold, ignore_index=-100, reduction="none"
        )  # [b, keep - 1]
        counts = (gold != -100).sum(1).clamp(min=1)
        return (nll.sum(1) / counts).tolist()

    def r_recon(
        completions: Sequence[Completion], description: Sequence[str] | None = None, **kwargs: Any
    ) -> list[float]:
        descriptions = _descriptions(completions, description)
        prompts = [
            RECON_PROMPT.format(keywords=", ".join(keywords))
            for keywords in completion_keywords(completions)
        ]
        prompt_ids = tokenizer(prompts, add_special_tokens=True)["input_ids"]
        target_ids = tokenizer(
            [" " + text.strip() for text in descriptions],
            add_special_tokens=False,
            truncation=True,
            max_length=max_description_tokens,
        )["input_ids"]
        rewards = [-1.0] * len(completions)
        rows = [i for i, t in enumerate(target_ids) if t and descriptions[i].strip()]
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            nlls = mean_nll([prompt_ids[i] for i in batch], [target_ids[i] for i in batch])
            for i, nll in zip(batch, nlls, strict=True):
                rewards[i] = -math.exp(min(nll, MAX_NLL))
        return _checked("r_recon", rewards, completions)

    return r_recon


def r_len(completions: Sequence[Completion], **kwargs: Any) -> list[float]:
    """Minus the number of keywords in each completion (uncapped)."""
    return _checked(
        "r_len", [-float(len(k)) for k in completion_keywords(completions, None)], completions
    )


length_reward = r_len  # the name TRL logs is the function's `__name__`: "r_len"


def make_collab_reward(encoder: TextEncoder, targets: CollabTargets) -> RewardFunction:
    """`r_collab(completions, item_id, **kwargs)`: see `critic.collab` for the formula."""

    def r_collab(
        completions: Sequence[Completion], item_id: Sequence[str] | None = None, **kwargs: Any
    ) -> list[float]:
        if item_id is None or isinstance(item_id, str) or len(item_id) != len(completions):
            raise ValueError("r_collab needs the dataset column `item_id` (one per completion)")
        joined = [", ".join(keywords) for keywords in completion_keywords(completions)]
        return _checked("r_collab", collab_values(encoder, targets, joined, item_id), completions)

    return r_collab


class RewardWeights(BaseModel):
    """Weights of the normalised rewards (the paper publishes none; these are ours).

    `alpha` (information) carries most weight: it is the most direct test of whether the
    keywords say what the item is, and the encoder is reliable. `beta` (reconstruction) is
    next: useful, but a small LM's perplexity also depends on how predictable the
    description is by itself. `gamma` (length) is a guard rail against padded or empty
    lists; it is mostly flat inside 3..8 keywords, so a large weight would only add a
    constant. The totals seen in practice: `benchmarks/README.md`, "Critic reward scale".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.5, ge=0.0, description="Weight of the information reward.")
    beta: float = Field(0.3, ge=0.0, description="Weight of the reconstruction reward.")
    gamma: float = Field(0.2, ge=0.0, description="Weight of the length reward.")
    delta: float = Field(
        0.3, ge=0.0,
        description="Weight of the collaborative reward (ours), where the critic has "
        "collaborative targets; without them the total is over the other three.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _some_weight(self) -> RewardWeights:
        if self.alpha + self.beta + self.gamma <= 0:
            raise ValueError("at least one of `alpha`, `beta`, `gamma` must be positive")
        return self


def length_score(n_keywords: int) -> float:
    """The length reward on [0, 1] for `n_keywords` (target range 3..8, see module doc)."""
    if n_keywords < MIN_KEYWORDS:
        return max(n_keywords, 0) / MIN_KEYWORDS
    if n_keywords <= MAX_KEYWORDS:
        return 1.0 - 0.04 * (n_keywords - MIN_KEYWORDS)
    return max(0.0, 0.8 * (1.0 - (n_keywords - MAX_KEYWORDS) / MAX_KEYWORDS))


def normalise(raw: Mapping[str, float], *, vocab_size: int) -> dict[str, float]:
    """Raw `r_info`, `r_recon`, `r_len` -> `info`, `recon`, `len` on [0, 1] (module doc)."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be at least 2, got {vocab_size}")
    perplexity = max(-raw["r_recon"], 1.0)
    scaled = {
        "info": min(max(raw["r_info"], 0.0), 1.0),
        "recon": min(max(1.0 - math.log(perplexity) / math.log(vocab_size), 0.0), 1.0),
        "len": length_score(round(-raw["r_len"])),
    }
    if "r_collab" in raw:
        scaled["collab"] = min(max(0.5 + raw["r_collab"], 0.0), 1.0)
    return scaled


# The weighted total's terms in order: (normalised component, weight field of
# `RewardWeights`). `collab` counts only where the critic has collaborative targets.
TERMS = (("info", "alpha"), ("recon", "beta"), ("len", "gamma"), ("collab", "delta"))


def weighted_total(components: Mapping[str, float], weights: RewardWeights) -> float:
    """`sum(w_k * c_k) / sum(w_k)` of NORMALISED components (`normalise`'s output), in
    [0, 1]; `collab` (weight delta) counts where present."""
    missing = [key for key in NORMALISED_KEYS if key not in components]
    if missing:
        raise ValueError(
            f"weighted_total needs normalised components {NORMALISED_KEYS}, missing {missing}; "
            "pass raw rewards through `normalise` first"
        )
    pairs = [(getattr(weights, weight), components[key]) for key, weight in TERMS
             if key in components]  # fmt: skip
    total_weight = sum(weight for weight, _ in pairs)
    if total_weight <= 0:
        raise ValueError("the weights of the present components sum to 0")
    return sum(weight * value for weight, value in pairs) / total_weight


def describe_total(weights: RewardWeights, collab: bool) -> dict[str, Any]:
    """The formula and weights that `weighted_total` applies, from the same `TERMS`: what a
    trace or the inspector shows as the rule that decided.

    Args:
        weights: The critic's weights.
        collab: Whether its components include `collab` (it has collaborative targets).
    """
    terms = [(key, weight) for key, weight in TERMS if key != "collab" or collab]
    values = {weight: getattr(weights, weight) for _, weight in terms}
    numerator = " + ".join(f"{weight}*{key}" for key, weight in terms)
    denominator = " + ".join(weight for _, weight in terms)
    return {
        "formula": f"total = ({numerator}) / ({denominator}), each component normalised to [0, 1]",
        "weights": values,
    }


def make_rewards(
    encoder: TextEncoder, llm: LLM, collab: CollabTargets | None = None
) -> dict[str, RewardFunction]:
    """The raw reward functions by name: r_info, r_recon, r_len, and r_collab with targets."""
    rewards = {"r_info": make_info_reward(encoder), "r_recon": make_recon_reward(llm),
               "r_len": length_reward}  # fmt: skip
    if collab is not None:
        rewards["r_collab"] = make_collab_reward(encoder, collab)
    return rewards


def raw_scores(
    rewards: Mapping[str, RewardFunction],
    completions: Sequence[Completion],
    description: Sequence[str] | None = None,
    item_id: Sequence[str] | None = None,
) -> list[dict[str, float]]:
    """Each reward called ONCE over the distinct (completion, item) pairs; one dict of raw
    rewards per completion. A GRPO group often repeats a completion: it is scored once."""
    descriptions = _descriptions(completions, description)
    ids = [""] * len(completions) if item_id is None else [str(i) for i in item_id]
    keys = [(completion_text(c), d, i) for c, d, i in zip(completions, descriptions, ids,
                                                         strict=True)]  # fmt: skip
    unique = list(dict.fromkeys(keys))
    columns = {"description": [d for _, d, _ in unique]}
    if item_id is not None:
        columns["item_id"] = [i for _, _, i in unique]
    texts = [text for text, _, _ in unique]
    values = {name: reward(texts, **columns) for name, reward in rewards.items()}
    row = {key: position for position, key in enumerate(unique)}
    return [{name: values[name][row[key]] for name in rewards} for key in keys]


def make_total_reward(
    encoder: TextEncoder,
    llm: LLM,
    weights: RewardWeights | None = None,
    collab: CollabTargets | None = None,
) -> RewardFunction:
    """`r_total(completions, description, item_id, log_metric, **kwargs)`: the weighted,
    normalised sum as the one TRL reward. Each raw reward runs once per batch; their means
    (raw and normalised) go to TRL's `log_metric` as `raw/r_info`, ..., `norm/info`, ..."""
    weights = weights or RewardWeights()
    rewards = make_rewards(encoder, llm, collab)
    vocab_size = len(llm.tokenizer)

    def r_total(
        completions: Sequence[Completion],
        description: Sequence[str] | None = None,
        item_id: Sequence[str] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        raws = raw_scores(rewards, completions, description, item_id)
        scaled = [normalise(raw, vocab_size=vocab_size) for raw in raws]
        totals = [weighted_total(components, weights) for components in scaled]
        if log_metric is not None and raws:
            for name in raws[0]:
                log_metric(f"raw/{name}", float(np.mean([raw[name] for raw in raws])))
            for name in scaled[0]:
                log_metric(f"norm/{name}", float(np.mean([c[name] for c in scaled])))
        return _checked("r_total", totals, completions)

    return r_total
