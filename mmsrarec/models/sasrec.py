"""SASRec (Kang & McAuley, ICDM 2018): a causal Transformer over the item-id history.

Our variant, chosen for strength on small data (see `SASRecConfig` for the defaults):
pre-LayerNorm blocks (causal multi-head attention, then a 4x GELU feed-forward), learned
positional embeddings counted from the most recent item, padding masked out of attention,
output scores tied to the item embeddings, and full softmax cross-entropy over the catalog
at every position (the paper used binary cross-entropy with one sampled negative; `loss="bce"`
keeps that option).

`item_init="text"` is the text-initialised variant (`sasrec-text`, after "Let It Go?",
RecSys 2025): an item's embedding is its frozen text vector t_i (unit norm) plus a trainable
delta d_i bounded by ‖d_i‖ <= `delta_bound`, so the text decides where an item sits and the
interactions only move it a little. An item without a trained ID (`has_id` False: a cold item
of the new-releases split, or one added after training) is its text vector alone; the
ID-only variant cannot represent such an item, leaves it out of histories and scores it -inf.
Items without an ID never enter the training softmax: they did not exist at training time.

This module holds the network and its settings only. Training: `training.sasrec_trainer`;
the `Recommender` with persistence: `recommenders.sasrec`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from mmsrarec.errors import ConfigError

Loss = Literal["ce", "bce", "sampled", "auto"]
# Fields added after models were trained: left out of `digest` while at their default, so that
# every model trained before keeps its fingerprint.
LATER_FIELDS = ("sampled_negatives", "item_init", "delta_bound")


@dataclass(frozen=True)
class SASRecConfig:
    """Model and training settings. The defaults were tuned on ML-100K's validation split
    (the search and its numbers: `benchmarks/README.md`, "SASRec defaults")."""

    max_len: int = field(
        default=50, metadata={"help": "Most recent items the model reads (positions)."}
    )
    hidden: int = field(default=64, metadata={"help": "Embedding and hidden size."})
    layers: int = field(default=2, metadata={"help": "Number of Transformer blocks."})
    heads: int = field(default=2, metadata={"help": "Attention heads; must divide `hidden`."})
    dropout: float = field(
        default=0.2,
        metadata={"help": "Dropout on embeddings, attention weights and block outputs."},
    )
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(
        default=0.0, metadata={"help": "AdamW decoupled weight decay (0 = plain Adam)."}
    )
    batch_size: int = field(
        default=64, metadata={"help": "Training windows (of up to `max_len` positions) per step."}
    )
    max_epochs: int = field(default=200, metadata={"help": "Upper bound on training epochs."})
    patience: int = field(
        default=5,
        metadata={"help": "Stop after this many validations in a row without a new best."},
    )
    eval_every: int = field(
        default=2, metadata={"help": "Validate (full-ranking NDCG@10) every this many epochs."}
    )

    item_init: Literal["random", "text"] = field(
        default="random",
        metadata={
            "help": "`random`: ID embeddings; `text`: frozen text vector + bounded trainable "
            "delta (`sasrec-text`), which also scores items that have no interactions."
        },
    )
    delta_bound: float = field(
        default=0.5,
        metadata={"help": "`item_init=text`: largest norm of an item's delta (text vectors: 1)."},
    )
    loss: Loss = field(
        default="ce",
        metadata={
            "help": "`ce`: softmax cross-entropy over all items at every position; "
            "`bce`: binary cross-entropy with one uniform negative (original paper); "
            "`sampled`: softmax over the positive and `sampled_negatives` items shared by the "
            "batch, drawn from half popularity, half uniform, logits corrected by log q "
            "(`training/losses.py`; for large catalogues); `auto`: `ce` up to "
            "20,000 items, `sampled` above."
        },
    )
    sampled_negatives: int = field(
        default=1024,
        metadata={"help": "Negatives per batch of the `sampled` loss (with replacement)."},
    )

    def __post_init__(self) -> None:
        for name in ("max_len", "hidden", "layers", "heads", "batch_size", "max_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        for name in ("patience", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ConfigError(
                f"`hidden` ({self.hidden}) must be divisible by `heads` ({self.heads}): "
                "change one of them"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"`dropout` must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("`lr` must be > 0 and `weight_decay` >= 0")
        if self.loss not in get_args(Loss):
            raise ConfigError(
                f"`loss` must be one of {', '.join(get_args(Loss))}, got `{self.loss}`"
            )
        if self.sampled_negatives < 1:
            raise ConfigError(f"`sampled_negatives` must be at least 1: {self.sampled_negatives}")
        if self.item_init not in ("random", "text"):
            raise ConfigError(f"`item_init` must be `random` or `text`, got `{self.item_init}`")
        if self.delta_bound <= 0:
            raise ConfigError(f"`delta_bound` must be > 0, got {self.delta_bound}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """sha256 of the canonical JSON of every field (a `LATER_FIELDS` one only when set)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        fields = {
            k: v for k, v in self.to_dict().items() if k not in LATER_FIELDS or v != defaults[k]
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class _Block(nn.Module):
    """Pre-LN Transformer block: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, 4 * hidden),
            nn.GELU(),
            nn.Linear(4 * hidden, hidden),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x: [B, T, H]; allowed: bool [B, 1, T, T], True where query t may attend to key s."""
        b, t, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(h, dim=-1)
        q, k, v = (z.view(b, t, self.heads, h // self.heads).transpose(1, 2) for z in (q, k, v))
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )  # [B, heads, T, H / heads]
        x = x + self.drop(self.proj(attended.transpose(1, 2).reshape(b, t, h)))
        return x + self.drop(self.ffn(self.norm2(x)))


class SASRec(nn.Module):
    """Causal self-attention over left-padded item ids; item 0 is padding.

    Args:
        n_items: catalog size.
        config: settings.
        text: `item_init="text"`: frozen text vectors [n_items + 1, hidden], rows of norm 1
            (row 0 zeros); None otherwise.
    """

    def __init__(self, n_items: int, config: SASRecConfig, text: torch.Tensor | None = None):
        super().__init__()
        if (config.item_init == "text") != (text is not None):
            raise ConfigError("`item_init=text` needs text vectors, and only it takes them")
        self.n_items, self.max_len, self.hidden = n_items, config.max_len, config.hidden
        self.delta_bound = config.delta_bound
        # ID embeddings, or the text variant's deltas (trainable either way).
        self.item_embedding = nn.Embedding(n_items + 1, config.hidden, padding_idx=0)
        self.register_buffer("text", None if text is None else text.float().clone())
        # Which items have a trained ID; set by `set_cold` (not saved: it comes from the data).
        self.register_buffer("has_id", torch.ones(n_items + 1, dtype=torch.bool), persistent=False)
        self.position_embedding = nn.Embedding(config.max_len, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            _Block(config.hidden, config.heads, config.dropout) for _ in range(config.layers)
        )
        self.final_norm = nn.LayerNorm(config.hidden)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def set_cold(self, cold: Sequence[int]) -> None:
        """Mark `cold` item indices as having no trained ID."""
        self.has_id.fill_(True)
        if len(cold):
            self.has_id[torch.as_tensor(sorted(cold), device=self.has_id.device)] = False

    @property
    def reads_text(self) -> bool:
        return self.text is not None

    @torch.no_grad()
    def add_items(self, text: torch.Tensor | None, count: int) -> None:
        """`count` items appended to the catalog, without an ID: the text variant reads their
        vectors (`text`, [count, hidden], rows of norm 1); the ID-only one scores them -inf."""
        weight = self.item_embedding.weight
        grown = torch.cat([weight, weight.new_zeros(count, weight.shape[1])])
        self.item_embedding = nn.Embedding.from_pretrained(grown, freeze=False, padding_idx=0)
        if self.text is not None:
            self.text = torch.cat([self.text, text.to(self.text)])
        self.has_id = torch.cat([self.has_id, self.has_id.new_zeros(count)])
        self.n_items += count

    def item_vectors(self) -> torch.Tensor:
        """Every item's embedding [n_items + 1, H]: the ID embedding, or text + bounded delta
        (the delta only where the item has a trained ID)."""
        if self.text is None:
            return self.item_embedding.weight
        delta = self.item_embedding.weight  # [n + 1, H]
        norm = delta.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        delta = delta * (self.delta_bound / norm).clamp(max=1.0) * self.has_id[:, None]
        return self.text + delta

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items: LongTensor [B, T] (T <= max_len, left-padded) -> hidden states [B, T, H].

        Position t holds the state after reading items[:, : t + 1]. Positions are counted
        from the right, so the most recent item always has the last position embedding.
        """
        b, t = items.shape
        positions = torch.arange(self.max_len - t, self.max_len, device=items.device)
        present = items > 0  # [B, T]
        x = self.item_vectors()[items] * math.sqrt(self.hidden) + self.position_embedding(positions)
        x = self.drop(x) * present.unsqueeze(-1)
        causal = torch.ones(t, t, dtype=torch.bool, device=items.device).tril()
        # Attend to earlier real items; every position also sees itself, so a padding row
        # is never fully masked (its output is ignored, but a NaN would poison the batch).
        allowed = (causal & present[:, None, :]) | torch.eye(t, dtype=torch.bool, device=x.device)
        allowed = allowed.unsqueeze(1)  # [B, 1, T, T]
        for block in self.blocks:
            x = block(x, allowed)
        return self.final_norm(x)

    def item_logits(self, hidden: torch.Tensor, with_cold: bool | None = None) -> torch.Tensor:
        """hidden [..., H] -> scores [..., n_items + 1]; padding column -inf.

        Items without an ID are -inf unless `with_cold` (default: the text variant in eval
        mode; training always leaves them out of the softmax).
        """
        logits = hidden @ self.item_vectors().T
        logits[..., 0] = -math.inf
        if with_cold is None:
            with_cold = self.reads_text and not self.training
        if not with_cold:
            logits = logits.masked_fill(~self.has_id, -math.inf)
        return logits

    def known(self, history: Sequence[int]) -> list[int]:
        """The history items the model can read: all for the text variant, else those with an ID."""
        if self.reads_text:
            return list(history)
        has_id = self.has_id.tolist()
        return [i for i in history if has_id[i]]
