"""Losses of the all-item heads: sampled softmax with the logQ correction, for catalogues too
large for a full softmax at every position.

The full softmax costs N x n_items logits per batch (N positions): at 10^5 items and SASRec's
64 x 50 positions that is 3.2 * 10^8 floats per step. Sampled softmax scores each position's
positive against S negatives shared by the batch, drawn from

    q = (1 - UNIFORM_SHARE) * unigram + UNIFORM_SHARE * uniform

(mixed negatives: popular items, which the full softmax's gradient is dominated by, plus the
long tail), and subtracts log(S q_j) from each drawn item's logit: then sum_s exp(o_s) / (S q_s)
is an importance-sampled estimate of the partition function sum_j exp(o_j), and the loss
estimates the full softmax's (Bengio & Senecal 2008; the logQ correction of Yi et al., RecSys
2019), so their curves can be compared. A draw equal to the position's positive is masked
(an "accidental hit").

Use: `log_q = sampling_log_q(counts)` once, then per batch
`sampled_softmax_loss(hidden, positives, item_weight, log_q, negatives, generator)` for a
dot-product head (SASRec), or `draw_negatives` + the head's own logits of the drawn items +
`corrected_softmax` (the LLM recommender's head adds biases and masks items without IDs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

FULL_SOFTMAX_MAX_ITEMS = 20_000  # `loss="auto"`: the full softmax up to here, sampled above
UNIFORM_SHARE = 0.5


def sampling_log_q(counts: Sequence[float]) -> torch.Tensor:
    """log of the sampling distribution over items 0..n [n + 1]; padding (0) is never drawn.

    Args:
        counts: training interactions per item index (index 0 unused).
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    counts[0] = 0.0
    n_items = len(counts) - 1
    unigram = counts / counts.sum() if counts.sum() > 0 else torch.zeros_like(counts)
    uniform = torch.full_like(counts, 1.0 / n_items)
    uniform[0] = 0.0
    q = (1.0 - UNIFORM_SHARE) * unigram + UNIFORM_SHARE * uniform
    return q.log().float()


def sampled_softmax_loss(
    hidden: torch.Tensor,
    positives: torch.Tensor,
    item_weight: torch.Tensor,
    log_q: torch.Tensor,
    negatives: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Mean cross-entropy of each positive against `negatives` shared sampled items, for a
    dot-product head (SASRec's).

    Args:
        hidden: states [N, H] of the positions that have a next item.
        positives: their next items [N] (1-based).
        item_weight: output item embeddings [n_items + 1, H]; logit = hidden . item_weight[j].
        log_q: `sampling_log_q(...)` [n_items + 1], on any device.
        negatives: items drawn (with replacement) for the whole batch.
        generator: CPU generator of the draw (the same draw on any device).
    """
    sampled = draw_negatives(log_q, negatives, generator, hidden.device)  # [S]
    positive = (hidden * item_weight[positives]).sum(-1)  # [N]
    return corrected_softmax(positive, hidden @ item_weight[sampled].T, sampled, positives, log_q)


def draw_negatives(
    log_q: torch.Tensor, negatives: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """`negatives` item indices drawn with replacement from exp(`log_q`), on the CPU
    `generator` (the same draw on any device), moved to `device`."""
    return torch.multinomial(log_q.exp().cpu(), negatives, replacement=True,
                             generator=generator).to(device)  # fmt: skip


def corrected_softmax(
    positive: torch.Tensor,
    sampled_logits: torch.Tensor,
    sampled: torch.Tensor,
    positives: torch.Tensor,
    log_q: torch.Tensor,
) -> torch.Tensor:
    """The sampled softmax's loss from the positives' logits [N] and the drawn items' logits
    [N, S] (any head: the logQ correction and the accidental-hit mask are applied here)."""
    log_q = log_q.to(positive.device)
    # exp(logit) / (S q): each draw's share of the importance-sampled partition function
    negative = sampled_logits - log_q[sampled] - math.log(len(sampled))  # [N, S]
    negative = negative.masked_fill(sampled[None, :] == positives[:, None], -math.inf)
    logits = torch.cat([positive[:, None], negative], dim=1)  # [N, 1 + S]; the positive first
    return F.cross_entropy(logits, torch.zeros_like(positives))
