"""SASRec behind the `Recommender` interface, with persistence.

The network and its settings are `models.sasrec`; the training loop (early stopping on
validation NDCG@10) is `training.sasrec_trainer`. This module fits or reloads one per seed.

Files written under `save_dir/seed<k>/` (each atomically; `meta.json` last, so its presence
means the folder is complete):
    weights.pt           best-epoch state dict
    config.json          the `SASRecConfig`
    meta.json            fingerprint (config hash + dataset name + train-sequences hash +
                         seed), n_items, best epoch, training log, checksums
    training.pt          while training: the state after the last finished epoch, which a
                         killed run resumes from; removed once `meta.json` is written
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmsrarec.config import Settings
from mmsrarec.data import Dataset, Item
from mmsrarec.errors import ConfigError, NotPreparedError
from mmsrarec.models.item_text import TextFeatures, UnitPCA, with_padding
from mmsrarec.models.sasrec import SASRec, SASRecConfig
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.storage import atomic_write_json, sha256_file
from mmsrarec.training.checkpoints import load_verified, remove_resumable, save_torch
from mmsrarec.training.sasrec_trainer import left_pad, score_histories, train_sasrec

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
TRAINING_CHECKPOINT = "training.pt"


class SASRecRecommender(Recommender):
    """SASRec behind the common `Recommender` interface, with optional persistence.

    Args:
        config: model and training settings (default `SASRecConfig()`).
        save_dir: where `fit` saves `seed<k>/` and from where it reloads a model whose
            fingerprint matches instead of training again. None: nothing is saved.
        progress: show a tqdm bar over epochs.
        device: torch device for training and scoring.
        text: `item_init="text"`: the items' text features, reduced to unit vectors of the
            hidden size by their principal components (`models.item_text.UnitPCA`).
    """

    name = "sasrec"

    def __init__(
        self,
        config: SASRecConfig | None = None,
        save_dir: Path | None = None,
        progress: bool = True,
        device: str = "cpu",
        text: TextFeatures | None = None,
    ) -> None:
        self.config = config if config is not None else SASRecConfig()
        self.text = text
        self.pca: UnitPCA | None = None  # fitted on the catalog: projects new items too
        self.item_kind = "item"
        self.save_dir = save_dir
        self.progress = progress
        self.device = torch.device(device)
        self.model: SASRec | None = None
        self.meta: dict[str, Any] = {}

    @property
    def reads_text(self) -> bool:  # type: ignore[override]
        return self.config.item_init == "text"

    # ----- training -------------------------------------------------------------------

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Train on `dataset.train_sequences()` with validation early stopping, or reload."""
        text = None
        self.item_kind = dataset.item_kind
        if self.config.item_init == "text":
            if self.text is None:
                raise ConfigError("SASRec: `item_init=text` needs `text` features to train")
            features = self.text.catalog(dataset)
            self.pca = UnitPCA(features, self.config.hidden)
            text = torch.from_numpy(with_padding(self.pca(features)))
        fingerprint = sasrec_fingerprint(self.config, dataset, seed, text)
        folder = None
        if self.save_dir is not None:
            folder = self.save_dir / f"seed{seed}{dataset.split_tag}"
        if folder is not None and _saved_fingerprint(folder) == fingerprint:
            self._load(folder, dataset.cold)
            logger.info(
                "SASRec seed %d: loaded from %s (same fingerprint), no training", seed, folder
            )
            return
        logger.info("SASRec seed %d: training (no saved model with this fingerprint)", seed)
        with torch.random.fork_rng(devices=[]):  # seed locally; the caller's RNG is untouched
            torch.manual_seed(seed)  # initial weights depend on the seed only
            self.model = SASRec(dataset.n_items, self.config, text).to(self.device)
            self.model.set_cold(dataset.cold)
            result = train_sasrec(
                self.model, dataset, self.config, seed, progress=self.progress,
                checkpoint=folder / TRAINING_CHECKPOINT if folder is not None else None,
                run_key=fingerprint,
            )  # fmt: skip
        self.meta = {
            "format_version": FORMAT_VERSION,
            "fingerprint": fingerprint,
            "dataset": dataset.name,
            "seed": seed,
            "n_items": dataset.n_items,
            "best_epoch": result.best_epoch,
            "best_valid_ndcg10": result.best_valid_ndcg10,
            "train_seconds": result.seconds,
            "log": result.log,
        }
        if folder is not None:
            self._save(folder)
            remove_resumable(folder / TRAINING_CHECKPOINT)

    def add_items(self, items: Sequence[Item]) -> None:
        """New items without an ID: the text variant scores them from their text vectors
        (projected as the catalog's were), the ID-only one -inf."""
        model = self._require_model()
        text = None
        if model.reads_text:
            if self.text is None or self.pca is None:
                raise NotPreparedError("`sasrec-text` must be fitted before items are added")
            projected = self.pca(self.text.of_items(items, self.item_kind))
            text = torch.from_numpy(projected.astype(np.float32))
        model.add_items(text, len(items))

    # ----- scoring --------------------------------------------------------------------

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        """Scores [len(queries), n_items + 1] from each query's last `max_len` history items.

        An empty history is scored from position embeddings alone (finite, not meaningful).
        """
        return score_histories(self._require_model(), [q.history for q in queries])

    @torch.no_grad()
    def embed_histories(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """Final-position hidden state of each history: float32 [len(histories), hidden].

        The same state that scores the next item; L2-normalise it for cosine retrieval.
        """
        model = self._require_model()
        model.eval()
        rows = []
        for start in range(0, len(histories), 256):
            batch = [model.known(h) for h in histories[start : start + 256]]
            items = left_pad(batch, model.max_len).to(self.device)
            rows.append(model(items)[:, -1].float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, model.hidden), np.float32)

    def item_vectors(self) -> np.ndarray:
        """The output item embeddings: float32 [n_items + 1, hidden]; a history's score of item
        j is `embed_histories(h) @ item_vectors()[j]` (the scores are tied to them)."""
        return self._require_model().item_embedding.weight.detach().float().cpu().numpy()

    def _require_model(self) -> SASRec:
        if self.model is None:
            raise NotPreparedError("SASRec has no weights: call `fit` or `load_sasrec` first")
        return self.model

    # ----- persistence ----------------------------------------------------------------

    def _save(self, folder: Path) -> None:
        model = self._require_model()
        save_torch(folder / "weights.pt", {k: v.cpu() for k, v in model.state_dict().items()})
        atomic_write_json(folder / "config.json", self.config.to_dict())
        self.meta["weights_sha256"] = sha256_file(folder / "weights.pt")
        atomic_write_json(folder / "meta.json", self.meta)  # last: marks the folder complete
        logger.info("SASRec: saved to %s", folder)

    def _load(self, folder: Path, cold: frozenset[int]) -> None:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        state = load_verified(folder / "weights.pt", meta.get("weights_sha256"), "cpu")
        text = None  # the saved state holds the text vectors
        if self.config.item_init == "text":
            text = torch.zeros(meta["n_items"] + 1, self.config.hidden)
        model = SASRec(meta["n_items"], self.config, text)
        model.load_state_dict(state)
        model.set_cold(cold)
        self.model = model.to(self.device).eval()
        self.meta = meta


def sasrec_dir(settings: Settings, variant: str = "sasrec") -> Path:
    """Where the SASRec checkpoints of `settings.dataset` live (`<run_dir>/<variant>/<dataset>`):
    one folder shared by the evaluator, the similar-users index and the LLM recommender."""
    return settings.run_dir / variant / settings.dataset


def sasrec_fingerprint(
    config: SASRecConfig, dataset: Dataset, seed: int, text: torch.Tensor | None = None
) -> str:
    """sha256 over the config hash, dataset name, training sequences, seed, and where they are
    not empty the cold items and the text vectors."""
    train = json.dumps(dataset.train_sequences(), sort_keys=True, separators=(",", ":"))
    parts = {
        "format_version": FORMAT_VERSION,
        "config": config.digest(),
        "dataset": dataset.name,
        "n_items": dataset.n_items,
        "train": hashlib.sha256(train.encode()).hexdigest(),
        "seed": seed,
    }
    if dataset.cold:
        parts["cold"] = sorted(dataset.cold)
    if text is not None:
        parts["text"] = hashlib.sha256(text.numpy().tobytes()).hexdigest()
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _saved_fingerprint(folder: Path) -> str | None:
    path = folder / "meta.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("fingerprint")


def load_sasrec(
    save_dir: Path, seed: int, progress: bool = True, device: str = "cpu"
) -> SASRecRecommender:
    """A fitted `SASRecRecommender` from `save_dir/seed<seed>/` (written by `fit`)."""
    folder = save_dir / f"seed{seed}"
    if not (folder / "meta.json").exists():
        raise NotPreparedError(
            f"no trained SASRec in `{folder}`: fit `SASRecRecommender(save_dir={save_dir})` "
            f"with seed {seed} first"
        )
    config = SASRecConfig(**json.loads((folder / "config.json").read_text(encoding="utf-8")))
    recommender = SASRecRecommender(config, save_dir, progress=progress, device=device)
    recommender._load(folder, frozenset())
    return recommender
