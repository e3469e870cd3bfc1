"""Hybrid item tokens for a prompt: one input vector per item, placed in an item slot of the
yes/no prompt (`scoring/packed.py`) next to the item's title and keywords.

    e_i = s · (W_id · id_i + W_text · t_i)                     [hidden]

`id_i` is the item's collaborative ID embedding (trainable, initialised from the trained
SASRec of the same seed) and `t_i` its frozen, standardised LLM text feature
(`models/item_text.py`). `W_text` starts at 0, as in the LLM recommender (`models/item_lm.py`):
text enters only where it lowers the loss. `s` is fixed at build time so that the vectors
start at the root-mean-square size of the LLM's word embeddings, the scale its first layer
expects.
"""

from __future__ import annotations

import torch
from torch import nn


class HybridItemTokens(nn.Module):
    """Item indices (1-based) -> vectors in the LLM's word-embedding space.

    Args:
        id_init: [n_items + 1, d_id] initial ID embeddings (row 0 = padding).
        text_features: [n_items + 1, d_text] frozen text features (row 0 = zeros).
        hidden: the LLM's hidden size.
        word_rms: root-mean-square entry of the LLM's word embeddings.
    """

    def __init__(
        self, id_init: torch.Tensor, text_features: torch.Tensor, hidden: int, word_rms: float
    ) -> None:
        super().__init__()
        self.id_embedding = nn.Embedding.from_pretrained(
            id_init.float().clone(), freeze=False, padding_idx=0
        )
        self.id_proj = nn.Linear(id_init.shape[1], hidden, bias=False)
        self.register_buffer("text_features", text_features.float().clone(), persistent=False)
        self.text_proj = nn.Linear(text_features.shape[1], hidden, bias=False)
        nn.init.normal_(self.id_proj.weight, std=id_init.shape[1] ** -0.5)
        nn.init.zeros_(self.text_proj.weight)
        with torch.no_grad():
            start = self.id_proj(self.id_embedding.weight[1:]).pow(2).mean().sqrt()
        self.register_buffer("scale", torch.tensor(word_rms / max(float(start), 1e-6)))

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """[...] item indices -> [..., hidden]."""
        ids = self.id_proj(self.id_embedding(items))
        text = self.text_proj(self.text_features[items])
        return self.scale * (ids + text)
