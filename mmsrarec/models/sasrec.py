"""SASRec (Kang & McAuley, ICDM 2018): a causal Transformer over the item-id history.

Our variant, chosen for strength on small data (see `SASRecConfig` for the defaults):
pre-LayerNorm blocks (causal multi-head attention, then a 4x GELU feed-forward), learned
positional embeddings counted from the most recent item, padding masked out of attention,
output scores tied to the item embeddings, and full softmax cross-entropy over the catalog
at every position (the paper used binary cross-entropy with one sampled negative; `loss="bce"`
keeps that option).

This module holds the network and its settings only. Training: `training.sasrec_trainer`;
the `Recommender` with persistence: `recommenders.sasrec`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from mmsrarec.errors import ConfigError

Loss = Literal["ce", "bce", "sampled", "auto"]
# Fields added after models were trained: left out of `digest` while at their default, so that
# every model trained before keeps its fingerprint.
LATER_FIELDS = ("sampled_negatives",)


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
    """Causal self-attention over left-padded item ids; item 0 is padding."""

    def __init__(self, n_items: int, config: SASRecConfig) -> None:
        super().__init__()
        self.n_items, self.max_len, self.hidden = n_items, config.max_len, config.hidden
        self.item_embedding = nn.Embedding(n_items + 1, config.hidden, padding_idx=0)
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

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items: LongTensor [B, T] (T <= max_len, left-padded) -> hidden states [B, T, H].

        Position t holds the state after reading items[:, : t + 1]. Positions are counted
        from the right, so the most recent item always has the last position embedding.
        """
        b, t = items.shape
        positions = torch.arange(self.max_len - t, self.max_len, device=items.device)
        present = items > 0  # [B, T]
        x = self.item_embedding(items) * math.sqrt(self.hidden) + self.position_embedding(positions)
        x = self.drop(x) * present.unsqueeze(-1)
        causal = torch.ones(t, t, dtype=torch.bool, device=items.device).tril()
        # Attend to earlier real items; every position also sees itself, so a padding row
        # is never fully masked (its output is ignored, but a NaN would poison the batch).
        allowed = (causal & present[:, None, :]) | torch.eye(t, dtype=torch.bool, device=x.device)
        allowed = allowed.unsqueeze(1)  # [B, 1, T, T]
        for block in self.blocks:
            x = block(x, allowed)
        return self.final_norm(x)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., H] -> scores [..., n_items + 1]; padding column -inf."""
        logits = hidden @ self.item_embedding.weight.T
        logits[..., 0] = -math.inf
        return logits
