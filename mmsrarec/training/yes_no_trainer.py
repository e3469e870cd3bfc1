"""Listwise training of the yes/no scorer with hybrid item tokens (`recommenders/yes_no.py`).

One example is one training position of one user: the prompt prefix (the last `n_history`
items, the similar users' next items) and 1 + `negatives` candidate suffixes, the real next
item first, packed in one sequence (`scoring/packed.py`, the layout scoring uses). Only the
answer token supervises: the loss is the softmax cross-entropy of the real item over the
candidates' yes/no margins, `logsumexp(yes) - logsumexp(no)`. No other task, no EOS.

Every `eval_every` examples the trainer scores `n_valid_users` validation users (their
validation item and frozen negatives) and keeps the weights of the best NDCG@5; after each
evaluation the trainable weights, the optimizer and the RNG state go atomically to
`checkpoint.pt`, so a killed run resumes from the last evaluation. Reads training sequences
and the validation stage only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mmsrarec.data import Dataset
from mmsrarec.errors import ConfigError
from mmsrarec.metrics import ndcg, ranks_from_scores
from mmsrarec.training.checkpoints import load_resumable, save_resumable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class YesNoConfig:
    """Prompt, model and training settings of the hybrid yes/no scorer (CPU defaults)."""

    n_history: int = field(default=5, metadata={"help": "History items in each prompt."})
    k_similar: int = field(
        default=3, metadata={"help": "Similar users whose next item the prompt lists (0 = none)."}
    )
    keywords: str = field(
        default="tuned",
        metadata={"help": "Keyword source of the prompts: none, base, tuned or tuned:<tag>."},
    )
    negatives: int = field(
        default=9, metadata={"help": "Unseen items per training list (1 + this candidates)."}
    )
    examples: int = field(
        default=300, metadata={"help": "Training positions (lists), one per drawn user."}
    )
    batch_size: int = field(default=8, metadata={"help": "Lists per optimizer step."})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank on every projection."})
    lr: float = field(default=3e-4, metadata={"help": "AdamW learning rate."})
    eval_every: int = field(
        default=100, metadata={"help": "Training lists between validation evaluations."}
    )
    n_valid_users: int = field(
        default=48, metadata={"help": "Validation users (a seeded sample) for NDCG@5."}
    )
    bf16: bool = field(default=True, metadata={"help": "bfloat16 autocast (CPU and GPU)."})
    rerank: int = field(
        default=50, metadata={"help": "Full ranking: SASRec's top items that the LLM re-ranks."}
    )

    def __post_init__(self) -> None:
        for name in ("n_history", "negatives", "examples", "batch_size", "lora_rank",
                     "eval_every", "n_valid_users", "rerank"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if self.k_similar < 0:
            raise ConfigError(f"`k_similar` must be at least 0, got {self.k_similar}")
        if self.lr <= 0:
            raise ConfigError(f"`lr` must be above 0, got {self.lr}")
        if self.keywords.partition(":")[0] not in ("none", "base", "tuned"):
            raise ConfigError(f"`keywords` must be none, base, tuned or tuned:<tag>, "
                              f"got `{self.keywords}`")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Position:
    """A training list: the history before `target`, the target, `negatives` unseen items."""

    user: str
    history: tuple[int, ...]
    target: int
    negatives: tuple[int, ...]


def training_positions(dataset: Dataset, count: int, negatives: int, seed: int) -> list[Position]:
    """`count` lists, one position per user, users cycled in a seeded order; the target is a
    training item, the negatives never appear in the user's training sequence."""
    rng = random.Random(seed)
    train = {u: s for u, s in dataset.train_sequences().items() if len(s) >= 2}
    users = sorted(train)
    rng.shuffle(users)
    out = []
    for number in range(count):
        user = users[number % len(users)]
        seq = train[user]
        t = rng.randrange(1, len(seq))
        seen = set(seq)
        unseen = [i for i in range(1, dataset.n_items + 1) if i not in seen]
        if len(unseen) < negatives:
            raise ConfigError(f"`negatives` is {negatives} but user `{user}` has only "
                              f"{len(unseen)} unseen items: lower it")  # fmt: skip
        out.append(Position(user, tuple(seq[:t]), seq[t], tuple(rng.sample(unseen, negatives))))
    return out


# (user, history, candidates) per list -> one margin per candidate, differentiable
ScoreLists = Callable[[Sequence[tuple[str, Sequence[int], Sequence[int]]]], list[torch.Tensor]]


@dataclass
class YesNoResult:
    best_examples: int
    best_valid_ndcg5: float
    log: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def validation_ndcg5(score: ScoreLists, dataset: Dataset, users: Sequence[str]) -> float:
    """NDCG@5 of the validation item among its frozen negatives (pessimistic ties)."""
    with torch.no_grad():
        margins = score([(u, dataset.history(u, "valid"), dataset.candidates(u, "valid"))
                         for u in users])  # fmt: skip
    scores = np.stack([m.float().cpu().numpy() for m in margins])
    return ndcg(ranks_from_scores(scores, 0), 5)


def train_yes_no(
    module: torch.nn.Module,
    score: ScoreLists,
    dataset: Dataset,
    config: YesNoConfig,
    seed: int,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> YesNoResult:
    """Train `module`'s trainable weights (LoRA and item tokens) with `score` (which runs
    `module`); on return `module` holds the best validation weights.

    Args:
        module: owns every trainable parameter; `trainable_state()` and `load_state_dict`.
        score: margins of each list's candidates (the scorer's own packed forward).
        checkpoint: the state after the last evaluation (resume), or None.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    positions = training_positions(dataset, config.examples, config.negatives, seed)
    valid_users = sorted(dataset.valid_users)
    valid_users = sorted(
        random.Random(seed).sample(valid_users, min(config.n_valid_users, len(valid_users)))
    )
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    result = YesNoResult(best_examples=0, best_valid_ndcg5=-math.inf)
    best_state, done = module.trainable_state(), 0
    saved = load_resumable(checkpoint, "cpu")
    if saved is not None:
        module.load_state_dict(saved["model"], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        best_state, done = saved["best_state"], saved["done"]
        result = YesNoResult(saved["best_examples"], saved["best_valid_ndcg5"], saved["log"])
        logger.info("yes/no scorer: resumed after %d lists from %s", done, checkpoint)
    if done == 0:
        _evaluate(score, dataset, valid_users, module, result, 0, started)
        best_state = module.trainable_state()
    bar = tqdm(total=len(positions), initial=done, desc="yes/no scorer", disable=not progress)
    total, count = 0.0, 0
    while done < len(positions):
        module.train()
        batch = positions[done : done + config.batch_size]
        margins = score([(p.user, p.history, (p.target, *p.negatives)) for p in batch])
        # The real item is candidate 0 of every list: one softmax over its candidates' margins.
        logits = torch.stack(margins).float()  # [B, 1 + negatives]
        loss = F.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long,
                                                   device=logits.device))  # fmt: skip
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training loss became {loss.item()}: lower `lr`")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        total, count = total + loss.item() * len(batch), count + len(batch)
        before, done = done, done + len(batch)
        bar.update(len(batch))
        bar.set_postfix(loss=f"{total / count:.3f}")
        if done // config.eval_every > before // config.eval_every or done == len(positions):
            result.log.append({"examples": done, "loss": total / count})
            total, count = 0.0, 0
            if _evaluate(score, dataset, valid_users, module, result, done, started):
                best_state = module.trainable_state()
            if checkpoint is not None:
                _save(checkpoint, module, optimizer, best_state, done, result)
    bar.close()
    module.load_state_dict(best_state, strict=False)
    module.eval()
    result.seconds = time.perf_counter() - started
    return result


def _evaluate(score, dataset, users, module, result: YesNoResult, done: int, started) -> bool:
    """Validation NDCG@5 into the log; True when it is the best so far."""
    module.eval()
    value = validation_ndcg5(score, dataset, users)
    if result.log and result.log[-1]["examples"] == done:
        result.log[-1]["valid_ndcg5"] = value
    else:
        result.log.append({"examples": done, "valid_ndcg5": value})
    result.log[-1]["seconds"] = time.perf_counter() - started
    logger.info("yes/no scorer after %d lists: validation NDCG@5 %.4f", done, value)
    if value > result.best_valid_ndcg5:
        result.best_examples, result.best_valid_ndcg5 = done, value
        return True
    return False


def _save(path: Path, module, optimizer, best_state, done: int, result: YesNoResult) -> None:
    save_resumable(path, {
        "model": module.trainable_state(), "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(), "best_state": best_state, "done": done,
        "best_examples": result.best_examples, "best_valid_ndcg5": result.best_valid_ndcg5,
        "log": result.log,
    })  # fmt: skip
