"""Frozen text features of catalog items, computed once and cached on disk.

An item's text is its title plus its keywords (the critic-approved ones from the keyword
cache where the item has them, else the words of its own text: year and genres on
ML-100K). Two feature kinds:

- `llm`: the LLM's last hidden state, mean-pooled over the text's tokens [n, hidden];
- `minilm`: the sentence encoder's embedding [n, dim].

The cache file is named by a sha256 over the kind, the model's identity and every item's
text, so another model or another keyword cache never reuses stale features.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from mmsrarec.data import Dataset, Item
from mmsrarec.storage import atomic_write_bytes

FEATURES_VERSION = 1


def item_text(item: Item, keywords: Sequence[str] | None) -> str:
    """`"<title>: <keywords>"`; without keywords, the item's own text after its title."""
    if keywords:
        return f"{item.title}: {', '.join(keywords)}"
    rest = item.text.removeprefix(item.title).strip(" .\n")
    return f"{item.title}: {rest}" if rest else item.title


def item_texts(dataset: Dataset, keywords: Mapping[str, list[str]] | None = None) -> list[str]:
    """One text per catalog item, in index order (item 1 first)."""
    keywords = keywords or {}
    return [item_text(item, keywords.get(item.item_id)) for item in dataset.items]


@torch.no_grad()
def llm_features(model: torch.nn.Module, tokenizer, texts: Sequence[str], batch: int = 32):
    """Mean-pooled last hidden state of each text: float32 [len(texts), hidden]."""
    model.eval()
    rows = []
    for start in range(0, len(texts), batch):
        encoded = tokenizer(
            list(texts[start : start + batch]), return_tensors="pt", padding=True,
            add_special_tokens=False,
        )  # fmt: skip
        encoded = encoded.to(model.device)
        hidden = model.get_decoder()(**encoded).last_hidden_state  # [B, T, H]
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        rows.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))
    return torch.cat(rows).float().cpu().numpy()


def standardize(features: np.ndarray) -> np.ndarray:
    """Zero mean and unit variance per column, so every projection starts on one scale."""
    return (features - features.mean(0)) / (features.std(0) + 1e-6)


def cached_features(
    folder: Path, kind: str, model_id: str, texts: Sequence[str],
    compute: Callable[[Sequence[str]], np.ndarray],
) -> np.ndarray:  # fmt: skip
    """Features of `texts` from `<folder>/item-features-<digest>.npz`, computed once."""
    digest = hashlib.sha256(
        json.dumps([FEATURES_VERSION, kind, model_id, list(texts)]).encode()
    ).hexdigest()
    path = folder / f"item-features-{kind}-{digest[:16]}.npz"
    if path.exists():
        with np.load(path) as saved:
            if str(saved["digest"]) == digest:
                return saved["features"]
    features = np.asarray(compute(texts), dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, features=features, digest=np.array(digest))
    atomic_write_bytes(path, buffer.getvalue())
    return features


def model_identity(source: Path, name: str) -> str:
    """A string that changes when the weights change: the folder's manifest or config."""
    for filename in ("mmsrarec-manifest.json", "config.json"):
        path = source / filename
        if path.exists():
            return name + ":" + hashlib.sha256(path.read_bytes()).hexdigest()
    return name
