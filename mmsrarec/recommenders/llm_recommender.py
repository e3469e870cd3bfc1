"""The LLM recommender: hybrid item tokens through a LoRA-tuned LLM, one forward per user,
a score for every item (`models/item_lm.py`, trained by `training/item_lm_trainer.py`).

`fit(dataset, seed)` needs the trained SASRec of the same seed (its item embeddings start the
ID part of the item tokens, and its user states drive the retrieval tokens); it trains or
reloads it under `<run_dir>/sasrec/<dataset>`. The recommender itself is saved under
`<run_dir>/llm-recommender/<dataset>/<variant>/seed<k>/`: `weights.pt` (trainable weights of
the best validation epoch), `meta.json` (fingerprint, training log), written last;
`checkpoint.pt` holds the last finished epoch while training, so a killed fit resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmsrarec.config import Settings
from mmsrarec.data import Dataset, Item
from mmsrarec.errors import NotPreparedError
from mmsrarec.models.device import model_device
from mmsrarec.models.item_lm import ItemLM, ItemLMConfig, add_lora, truncated_backbone
from mmsrarec.models.item_text import TextFeatures, standardize, with_padding
from mmsrarec.models.llm import LLM, load_llm
from mmsrarec.models.sasrec import SASRecConfig
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.recommenders.sasrec import SASRecRecommender, sasrec_dir, sasrec_fingerprint
from mmsrarec.summarization.keywords import resolve_keywords
from mmsrarec.tools.retrieval_tokens import RetrievalTokens
from mmsrarec.training.checkpoints import TrainedFolder
from mmsrarec.training.item_lm_trainer import (
    add_retrieval,
    score_histories,
    train_item_lm,
    user_windows,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class LLMRecommender(Recommender):
    """`Recommender` over the hybrid-token LLM.

    Args:
        settings: run settings (model, paths, threads, Chroma server).
        config: model and training settings.
        name: method name (also the folder of its checkpoints).
        keywords: keywords per raw item id for the item texts (e.g. a keyword cache's
            contents); items without any use their own text.
        progress: show tqdm bars.
        device: where the model trains and scores (default: the GPU when there is one).
        sasrec_config: settings of the SASRec whose item embeddings start the ID part
            (default: `SASRecConfig()`, the one the evaluator trains).
        keywords_from: where `fit` reads the item keywords (see `resolve_keywords`):
            `none` (the item's own text), `base` (the base summarizer's cached keywords),
            `tuned` or `tuned:<tag>` (the GRPO summarizer's), or `given` (`keywords`).
    """

    def __init__(
        self,
        settings: Settings,
        config: ItemLMConfig | None = None,
        name: str = "llm-recommender",
        keywords: Mapping[str, list[str]] | None = None,
        progress: bool = True,
        device: str | None = None,
        sasrec_config: SASRecConfig | None = None,
        keywords_from: str = "given",
    ) -> None:
        self.settings = settings
        self.device = torch.device(device) if device else model_device(settings)
        self.config = config or ItemLMConfig()
        self.name = name
        self.keywords = dict(keywords or {})
        self.progress = progress
        self.sasrec_config = sasrec_config
        self.keywords_from = keywords_from
        self.keywords_source = "given" if keywords else "item text"
        self.model: ItemLM | None = None
        self.retriever: RetrievalTokens | None = None
        self.meta: dict[str, Any] = {}
        self.text: TextFeatures | None = None  # how item texts become features (new ones too)
        self.raw_features: np.ndarray | None = None  # the catalog's, before standardising
        self.item_kind = "item"

    costly = True

    @property
    def reads_text(self) -> bool:  # type: ignore[override]
        return self.config.item_tokens != "id"

    def save_dir(self, seed: int, split_tag: str = "") -> Path:
        """`<run_dir>/llm-recommender/<dataset>/<name>/seed<k><split tag>`."""
        root = self.settings.run_dir / "llm-recommender" / self.settings.dataset / self.name
        return root / f"seed{seed}{split_tag}"

    # ----- training -------------------------------------------------------------------

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Train on the training split (validation for the checkpoint), or reload."""
        config = self.config.resolved(bool(dataset.cold))
        if self.keywords_from != "given":
            source = resolve_keywords(self.settings, dataset, self.keywords_from)
            self.keywords_source, self.keywords = source.description, source.keywords
        sasrec = SASRecRecommender(
            self.sasrec_config, save_dir=sasrec_dir(self.settings), progress=self.progress
        )
        sasrec.fit(dataset, seed)
        llm = load_llm(self.settings.model, self.settings)  # once: text features and backbone
        self.item_kind = dataset.item_kind
        features = self._text_features(dataset, seed, llm)
        fingerprint = _fingerprint(config, dataset, seed, sasrec, features, self.settings.model)
        folder = TrainedFolder(self.save_dir(seed, dataset.split_tag), key_field="fingerprint")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = self._build(llm, sasrec, features, config).to(self.device)
        self.model.set_cold(dataset.cold)
        if config.k_similar:
            self.retriever = RetrievalTokens(self.settings, dataset, sasrec, config.k_similar)
        if folder.saved_key() == fingerprint:
            self._load(folder)
            return
        windows = user_windows(dataset.train_sequences(), config.max_len)
        valid_retrieved = None
        if self.retriever is not None:
            add_retrieval(windows, dataset.train_sequences(), self.retriever.tokens)
            valid_retrieved = self.retriever.tokens(
                [(u, dataset.history(u, "valid")) for u in dataset.valid_users]
            )
        checkpoint = folder.start({"fingerprint": fingerprint})
        result = train_item_lm(self.model, dataset, config, seed, windows, valid_retrieved,
                               checkpoint, self.progress)  # fmt: skip
        self.meta = folder.publish(self.model.trainable_state(), {
            "format_version": FORMAT_VERSION, "fingerprint": fingerprint, "seed": seed,
            "config": config.to_dict(), "best_epoch": result.best_epoch,
            "best_valid_ndcg5": result.best_valid_ndcg5, "train_seconds": result.seconds,
            "log": result.log, "windows": len(windows),
            "items_with_keywords": sum(1 for i in dataset.items if self.keywords.get(i.item_id)),
            "keywords": self.keywords_source,
        })  # fmt: skip
        _plot(result.log, folder.path / "training.png", self.name)

    def _text_features(self, dataset: Dataset, seed: int, llm: LLM) -> np.ndarray | None:
        """Standardised frozen text features [n_items + 1, d] (row 0 zeros), or None."""
        config = self.config
        if config.item_tokens == "id":
            return None
        kind = "minilm" if config.text_features == "minilm" else "llm"
        self.raw_features = TextFeatures(self.settings, kind, self.keywords, llm).catalog(dataset)
        self.text = TextFeatures(self.settings, kind, self.keywords)  # loads the LLM if used
        features = standardize(self.raw_features)
        if config.text_features == "permuted":  # same values, wrong items: capacity, no knowledge
            features = features[np.random.default_rng(seed).permutation(len(features))]
        return with_padding(features)

    def add_items(self, items: Sequence[Item]) -> None:
        """New items without an ID, scored from their text (an ID-only variant: -inf)."""
        model = self._require_model()
        text = None
        if self.text is not None and self.raw_features is not None:
            raw = self.text.of_items(items, self.item_kind)
            text = torch.from_numpy(standardize(raw, like=self.raw_features).astype(np.float32))
        model.add_items(text, len(items))

    def _build(self, llm: LLM, sasrec: SASRecRecommender, features, config) -> ItemLM:
        backbone = add_lora(
            truncated_backbone(llm.model, config.layers, config.backbone), config.lora_rank
        )
        id_init = None
        if config.item_tokens != "text":
            id_init = sasrec.model.item_embedding.weight.detach().cpu()
        text = torch.from_numpy(features) if features is not None else None
        return ItemLM(backbone, llm.model.config.hidden_size, id_init, text, config.item_tokens,
                      config.dropout, config.text_init,
                      text_bias=bool(config.id_dropout))  # fmt: skip

    def _load(self, folder: TrainedFolder) -> None:
        state, self.meta = folder.load(self.device)
        self._require_model().load_state_dict(state, strict=False)
        self.model.eval()
        logger.info("%s: loaded from %s", self.name, folder.path)

    # ----- scoring --------------------------------------------------------------------

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        """Scores [len(queries), n_items + 1]: one forward per query (column 0 = -inf)."""
        model = self._require_model()
        retrieved = None
        if self.retriever is not None:
            retrieved = self.retriever.tokens([(q.user_id, q.history) for q in queries])
        return score_histories(model, [q.history for q in queries], retrieved,
                               self.config.max_len, self.config.bf16)  # fmt: skip

    def _require_model(self) -> ItemLM:
        if self.model is None:
            raise NotPreparedError(f"`{self.name}` is not fitted: call `fit(dataset, seed)`")
        return self.model


def _fingerprint(config, dataset, seed, sasrec, features, model: str) -> str:
    parts = {
        "format_version": FORMAT_VERSION, "config": config.digest(), "model": model,
        "sasrec": sasrec_fingerprint(sasrec.config, dataset, seed), "seed": seed,
        "features": None if features is None else hashlib.sha256(features.tobytes()).hexdigest(),
    }  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _plot(log: list[dict[str, float]], path: Path, title: str) -> None:
    from mmsrarec.training.plots import plot_curves

    rows = [{"step": row["epoch"], **row} for row in log]
    plot_curves(rows, ("loss", "valid_ndcg5"), path, f"{title}: loss and validation NDCG@5")
