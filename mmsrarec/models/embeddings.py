"""Sentence embeddings: a transformer encoder, pooled and L2-normalised (no sentence-transformers).

    encoder = load_encoder("all-minilm-l6-v2", settings)     # the packaged MiniLM
    vectors = encoder.encode(["space adventure film", ...])  # float32 [n, 384], unit rows

The pooling (mean or CLS) comes from the folder's sentence-transformers files
(`1_Pooling/config.json`, `sentence_bert_config.json`) when present; mean pooling otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import cached_file

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError, ModelNotFoundError
from mmsrarec.models.device import model_device
from mmsrarec.models.presets import ENCODER_PRESETS, encoder_preset_dir, resolve_pretrained

Pooling = Literal["mean", "cls"]


@dataclass
class SentenceEncoder:
    """A text encoder that turns texts into unit-length float32 vectors.

    Attributes:
        model: The transformer (eval mode, CPU).
        tokenizer: Its tokenizer.
        name: The spec it was loaded from (preset name, hub id or path).
        source: The local folder the weights were read from.
        pooling: `mean` (over non-padding tokens) or `cls` (the first token).
        max_length: Longer texts are truncated to this many tokens.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    source: Path
    pooling: Pooling = "mean"
    max_length: int = 256

    @property
    def dim(self) -> int:
        """Length of each embedding vector."""
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed `texts`.

        Returns:
            float32 array [len(texts), dim]; every row has L2 norm 1, so a dot product is the
            cosine similarity.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not one string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Batch texts of similar length together: less padding, same result.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                batch = batch.to(self.model.device)
                hidden = self.model(**batch).last_hidden_state  # [b, tokens, dim]
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [b, tokens, 1]
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=-1)
                out[rows] = pooled.cpu().numpy()
        return out


def _optional_json(load_from: str, filename: str, local_only: bool) -> dict[str, Any]:
    path = cached_file(
        load_from,
        filename,
        local_files_only=local_only,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    return json.loads(Path(path).read_text(encoding="utf-8")) if path else {}


def _pooling_mode(config: dict[str, Any], spec: str) -> Pooling:
    if not config or config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    modes = [key for key, on in config.items() if key.startswith("pooling_mode") and on]
    raise ConfigError(
        f"`embedding_model` `{spec}` uses pooling {modes}; only mean and CLS pooling are "
        "supported: pick another encoder"
    )


def load_encoder(spec: str, settings: Settings) -> SentenceEncoder:
    """Load a sentence encoder from a preset (`all-minilm-l6-v2`), a hub id or a folder.

    Raises:
        ModelNotFoundError: The spec names nothing that can be loaded (offline: at once).
    """
    if spec in ENCODER_PRESETS:
        source = encoder_preset_dir(spec)
        load_from, local_only = str(source), True
    else:
        load_from, source = resolve_pretrained(spec, settings, setting="embedding_model")
        local_only = settings.offline
    try:
        tokenizer = AutoTokenizer.from_pretrained(load_from, local_files_only=local_only)
        model = AutoModel.from_pretrained(
            load_from, local_files_only=local_only, dtype=torch.float32
        )
    except OSError as exc:  # a file the folder or the hub cache lacks
        raise ModelNotFoundError(
            f"`embedding_model` `{spec}` is incomplete in `{source}` ({exc}); re-save it with "
            "`save_pretrained`, or download it again with internet (`offline = false`)"
        ) from exc
    model.to(model_device(settings)).eval()
    pooling = _pooling_mode(_optional_json(load_from, "1_Pooling/config.json", local_only), spec)
    limits = [tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 512)]
    st_config = _optional_json(load_from, "sentence_bert_config.json", local_only)
    if "max_seq_length" in st_config:
        limits.append(int(st_config["max_seq_length"]))
    return SentenceEncoder(
        model=model,
        tokenizer=tokenizer,
        name=spec,
        source=source,
        pooling=pooling,
        max_length=min(limits),
    )


# Registered so that Chroma can rebuild it from a persisted collection's configuration.
