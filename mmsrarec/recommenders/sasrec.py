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
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmsrarec.config import Settings
from mmsrarec.data import Dataset
from mmsrarec.errors import NotPreparedError
from mmsrarec.models.sasrec import SASRec, SASRecConfig
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.storage import atomic_write_bytes, atomic_write_json, sha256_file
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
    """

    name = "sasrec"

    def __init__(
        self,
        config: SASRecConfig | None = None,
        save_dir: Path | None = None,
        progress: bool = True,
        device: str = "cpu",
    ) -> None:
        self.config = config if config is not None else SASRecConfig()
        self.save_dir = save_dir
        self.progress = progress
        self.device = torch.device(device)
        self.model: SASRec | None = None
        self.meta: dict[str, Any] = {}

    # ----- training -------------------------------------------------------------------

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Train on `dataset.train_sequences()` with validation early stopping, or reload."""
        fingerprint = sasrec_fingerprint(self.config, dataset, seed)
        folder = self.save_dir / f"seed{seed}" if self.save_dir is not None else None
        if folder is not None and _saved_fingerprint(folder) == fingerprint:
            self._load(folder)
            logger.info(
                "SASRec seed %d: loaded from %s (same fingerprint), no training", seed, folder
            )
            return
        logger.info("SASRec seed %d: training (no saved model with this fingerprint)", seed)
        with torch.random.fork_rng(devices=[]):  # seed locally; the caller's RNG is untouched
            torch.manual_seed(seed)  # initial weights depend on the seed only
            self.model = SASRec(dataset.n_items, self.config).to(self.device)
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
            (folder / TRAINING_CHECKPOINT).unlink(missing_ok=True)

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
            items = left_pad(histories[start : start + 256], model.max_len).to(self.device)
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
        buffer = io.BytesIO()
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buffer)
        atomic_write_bytes(folder / "weights.pt", buffer.getvalue())
        atomic_write_json(folder / "config.json", self.config.to_dict())
        self.meta["weights_sha256"] = sha256_file(folder / "weights.pt")
        atomic_write_json(folder / "meta.json", self.meta)  # last: marks the folder complete
        logger.info("SASRec: saved to %s", folder)

    def _load(self, folder: Path) -> None:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        weights = folder / "weights.pt"
        if not weights.exists() or sha256_file(weights) != meta.get("weights_sha256"):
            raise NotPreparedError(
                f"`{weights}` is missing or does not match `meta.json`: delete `{folder}` "
                "and fit again"
            )
        model = SASRec(meta["n_items"], self.config)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.model = model.to(self.device).eval()
        self.meta = meta


def sasrec_dir(settings: Settings) -> Path:
    """Where the SASRec checkpoints of `settings.dataset` live (`<run_dir>/sasrec/<dataset>`):
    one folder shared by the evaluator, the similar-users index and the LLM recommender."""
    return settings.run_dir / "sasrec" / settings.dataset


def sasrec_fingerprint(config: SASRecConfig, dataset: Dataset, seed: int) -> str:
    """sha256 over the config hash, dataset name, training sequences and seed."""
    train = json.dumps(dataset.train_sequences(), sort_keys=True, separators=(",", ":"))
    parts = {
        "format_version": FORMAT_VERSION,
        "config": config.digest(),
        "dataset": dataset.name,
        "n_items": dataset.n_items,
        "train": hashlib.sha256(train.encode()).hexdigest(),
        "seed": seed,
    }
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
    recommender._load(folder)
    return recommender
