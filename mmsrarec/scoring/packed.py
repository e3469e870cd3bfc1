"""One user's candidates in ONE sequence, with item tokens: the layout the hybrid yes/no
scorer trains and scores with.

    [ prefix (history, similar users' items) | suffix 1 | suffix 2 | ... | suffix n ]

A 4-D attention mask lets each suffix see the prefix and itself only, and its position ids
restart where the prefix ends, so every suffix is computed exactly as in `prefix + suffix`
alone (and as on `SharedPrefixScorer`'s KV cache) while the prefix is run once. Training
uses the very same function with gradients, so the training layout is the inference layout.

Item slots: the prompt text carries `ITEM_SLOT` right after every listed item's `</item>`
and the candidate's `</candidate>` (`prompts.build_prefix(..., slot=ITEM_SLOT)`); `encode`
turns each slot into one position whose input vector is the item's hybrid token instead of a
word embedding. Catalog text cannot hold a slot: `prompt_text.sanitize` turns control
characters into spaces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from mmsrarec.scoring.yes_no import encode_prefix

ITEM_SLOT = "\x1f"  # a control character: never in sanitized catalog text


@dataclass(frozen=True)
class Encoded:
    """Token ids with the item of each slot: `items[i]` > 0 where position i is a slot (its
    id is then the tokenizer's pad id, never looked up), else 0."""

    ids: list[int]
    items: list[int]


def encode(
    tokenizer: PreTrainedTokenizerBase, text: str, items: Sequence[int], first: bool
) -> Encoded:
    """Token ids of `text` whose slots hold `items` in order (1-based item indices).

    Args:
        first: the prompt's start: the BOS token is added as `encode_prefix` adds it (the
            plain scorer's rule), else nothing is added.

    Raises:
        ValueError: the number of slots is not `len(items)`.
    """
    pieces = text.split(ITEM_SLOT)
    if len(pieces) - 1 != len(items):
        raise ValueError(f"the prompt has {len(pieces) - 1} item slots for {len(items)} items")
    ids: list[int] = []
    slot_items: list[int] = []
    for number, piece in enumerate(pieces):
        if number == 0 and first:
            piece_ids = encode_prefix(tokenizer, piece)
        else:
            piece_ids = tokenizer(piece, add_special_tokens=False).input_ids
        ids += piece_ids
        slot_items += [0] * len(piece_ids)
        if number < len(items):
            ids.append(tokenizer.pad_token_id)
            slot_items.append(int(items[number]))
    return Encoded(ids, slot_items)


@dataclass(frozen=True)
class Packed:
    """A packed prompt: tensors on CPU, ready for one forward.

    Attributes:
        ids: [L] token ids. items: [L] item index per slot position (0 elsewhere).
        positions: [L] position ids (each suffix restarts after the prefix).
        mask: [L, L] True where a query row may attend to a key column.
        last: [n] the last position of each suffix (its answer token's logits).
    """

    ids: torch.Tensor
    items: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor


def pack(prefix: Encoded, suffixes: Sequence[Encoded]) -> Packed:
    """Lay out the prefix once and every suffix after it (see the module docstring)."""
    if not prefix.ids or not suffixes or any(not s.ids for s in suffixes):
        raise ValueError("a packed prompt needs a non-empty prefix and non-empty suffixes")
    p = len(prefix.ids)
    total = p + sum(len(s.ids) for s in suffixes)
    mask = torch.zeros(total, total, dtype=torch.bool)
    mask[:, :p] = True
    mask[:p, :p] = torch.ones(p, p, dtype=torch.bool).tril()
    positions = list(range(p))
    last, start = [], p
    for suffix in suffixes:
        n = len(suffix.ids)
        mask[start : start + n, start : start + n] = torch.ones(n, n, dtype=torch.bool).tril()
        positions += range(p, p + n)
        start += n
        last.append(start - 1)
    ids = prefix.ids + [i for s in suffixes for i in s.ids]
    items = prefix.items + [i for s in suffixes for i in s.items]
    return Packed(torch.tensor(ids), torch.tensor(items), torch.tensor(positions), mask,
                  torch.tensor(last))  # fmt: skip


ItemVectors = Callable[[torch.Tensor], torch.Tensor]  # item indices [N] -> vectors [N, H]


def answer_margins(
    model, packed: Packed, item_vectors: ItemVectors, yes_ids: torch.Tensor, no_ids: torch.Tensor
) -> torch.Tensor:
    """`logsumexp(yes logits) - logsumexp(no logits)` at each suffix's last token: [n].

    `sigmoid(margin)` is `p(yes) / (p(yes) + p(no))`. Differentiable in the model's trainable
    weights and in `item_vectors`.
    """
    device = model.device
    ids, items = packed.ids.to(device), packed.items.to(device)
    embeds = model.get_input_embeddings()(ids)  # [L, H]
    slots = items > 0
    if slots.any():
        vectors = item_vectors(items[slots]).to(embeds.dtype)  # [S, H]
        embeds = embeds.masked_scatter(slots.unsqueeze(-1), vectors)
    blocked = torch.finfo(embeds.dtype).min
    additive = torch.zeros(packed.mask.shape, dtype=embeds.dtype, device=device)
    additive = additive.masked_fill(~packed.mask.to(device), blocked)
    logits = (
        model(
            inputs_embeds=embeds.unsqueeze(0),
            attention_mask=additive[None, None],  # [1, 1, L, L]: used as given
            position_ids=packed.positions.to(device).unsqueeze(0),
            use_cache=False,
            logits_to_keep=packed.last.to(device),
        )
        .logits[0]
        .float()
    )  # [n, vocab]
    return logits[:, yes_ids].logsumexp(-1) - logits[:, no_ids].logsumexp(-1)
