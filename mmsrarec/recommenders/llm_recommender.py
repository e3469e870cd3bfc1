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
from mmsrarec.data import Dataset
from mmsrarec.errors import NotPreparedError
from mmsrarec.models.item_lm import ItemLM, ItemLMConfig, add_lora, truncated_backbone
from mmsrarec.models.item_text import catalog_features, standardize, with_padding
from mmsrarec.models.llm import LLM, load_llm
from mmsrarec.models.sasrec import SASRecConfig
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.recommenders.sasrec import SASRecRecommender, sasrec_dir, sasrec_fingerprint
from mmsrarec.storage import atomic_write_json, sha256_file
from mmsrarec.training.checkpoints import load_verified, remove_resumable, save_torch
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
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
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
        self.cold: frozenset[int] = frozenset()

    @property
    def reads_text(self) -> bool:  # type: ignore[override]
        return self.config.item_tokens != "id"

    def hide_ids(self, items: frozenset[int]) -> None:
        self._require_model().set_cold(self.cold | items)

    def save_dir(self, seed: int) -> Path:
        return (
            self.settings.run_dir
            / "llm-recommender"
            / self.settings.dataset
            / self.name
            / (f"seed{seed}")
        )

    # ----- training -------------------------------------------------------------------

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Train on the training split (validation for the checkpoint), or reload."""
        config = self.config.resolved(bool(dataset.cold))
        if self.keywords_from != "given":
            self.keywords_source, self.keywords = resolve_keywords(
                self.settings, dataset, self.keywords_from
            )
        sasrec = SASRecRecommender(
            self.sasrec_config, save_dir=sasrec_dir(self.settings), progress=self.progress
        )
        sasrec.fit(dataset, seed)
        llm = load_llm(self.settings.model, self.settings)  # once: text features and backbone
        features = self._text_features(dataset, seed, llm)
        fingerprint = _fingerprint(config, dataset, seed, sasrec, features, self.settings.model)
        folder = self.save_dir(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = self._build(llm, sasrec, features, config).to(self.device)
        self.cold = dataset.cold
        self.model.set_cold(dataset.cold)
        if config.k_similar:
            self.retriever = RetrievalTokens(self.settings, dataset, sasrec, config.k_similar)
        if _saved_fingerprint(folder) == fingerprint:
            self._load(folder)
            return
        windows = user_windows(dataset.train_sequences(), config.max_len)
        valid_retrieved = None
        if self.retriever is not None:
            add_retrieval(windows, dataset.train_sequences(), self.retriever.tokens)
            valid_retrieved = self.retriever.tokens(
                [(u, dataset.history(u, "valid")) for u in dataset.valid_users]
            )
        checkpoint = folder / "checkpoint.pt"
        if checkpoint.exists() and _checkpoint_fingerprint(folder) != fingerprint:
            remove_resumable(checkpoint)  # another configuration's progress: never resume
        atomic_write_json(folder / "training.json", {"fingerprint": fingerprint})
        result = train_item_lm(self.model, dataset, config, seed, windows, valid_retrieved,
                               checkpoint, self.progress)  # fmt: skip
        self.meta = {
            "format_version": FORMAT_VERSION, "fingerprint": fingerprint, "seed": seed,
            "config": config.to_dict(), "best_epoch": result.best_epoch,
            "best_valid_ndcg5": result.best_valid_ndcg5, "train_seconds": result.seconds,
            "log": result.log, "windows": len(windows),
            "items_with_keywords": sum(1 for i in dataset.items if self.keywords.get(i.item_id)),
            "keywords": self.keywords_source,
        }  # fmt: skip
        save_torch(folder / "weights.pt", self.model.trainable_state())
        self.meta["weights_sha256"] = sha256_file(folder / "weights.pt")
        atomic_write_json(folder / "meta.json", self.meta)  # last: marks the folder complete
        remove_resumable(checkpoint)
        _plot(result.log, folder / "training.png", self.name)

    def _text_features(self, dataset: Dataset, seed: int, llm: LLM) -> np.ndarray | None:
        """Standardised frozen text features [n_items + 1, d] (row 0 zeros), or None."""
        config = self.config
        if config.item_tokens == "id":
            return None
        kind = "minilm" if config.text_features == "minilm" else "llm"
        features = standardize(catalog_features(self.settings, dataset, kind, self.keywords, llm))
        if config.text_features == "permuted":  # same values, wrong items: capacity, no knowledge
            features = features[np.random.default_rng(seed).permutation(len(features))]
        return with_padding(features)

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

    def _load(self, folder: Path) -> None:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        state = load_verified(folder / "weights.pt", meta.get("weights_sha256"), self.device)
        self._require_model().load_state_dict(state, strict=False)
        self.model.eval()
        self.meta = meta
        logger.info("%s: loaded from %s", self.name, folder)

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


class RetrievalTokens:
    """Next items of the k most similar training users (SASRec states in the Chroma index),
    never the user itself."""

    def __init__(self, settings: Settings, dataset: Dataset, sasrec: SASRecRecommender, k: int):
        from mmsrarec.tools.index import CollaborativeIndex

        index = CollaborativeIndex.for_dataset_dir(settings.dataset_dir, settings.chroma_url)
        index.build(dataset, sasrec)
        self.collection = index.open(dataset, sasrec)
        self.dataset, self.sasrec, self.k = dataset, sasrec, k

    def tokens(self, prefixes: Sequence[tuple[str, Sequence[int]]]) -> list[list[int]]:
        """For each (user, item indices known so far): up to k item indices."""
        from mmsrarec.tools.index import normalize

        out: list[list[int]] = []
        for start in range(0, len(prefixes), 512):
            chunk = prefixes[start : start + 512]
            states = normalize(self.sasrec.embed_histories([list(p) or [0] for _, p in chunk]))
            found = self.collection.query(
                query_embeddings=states, n_results=self.k + 1, include=["metadatas"]
            )
            for (user, _), metas in zip(chunk, found["metadatas"], strict=True):
                others = [m for m in metas if str(m["user_id"]) != user][: self.k]
                out.append([self.dataset.index_of(str(m["next_item_id"])) for m in others])
        return out


def resolve_keywords(
    settings: Settings, dataset: Dataset, source: str
) -> tuple[str, dict[str, list[str]]]:
    """(what the keywords are, keywords per item id) for `source`:

    - `none`: no keywords (item texts are the items' own text);
    - `base`: the base summarizer's cached keywords (`mmsrarec summarize --critic`);
    - `tuned[:tag]`: the GRPO summarizer's (`mmsrarec train summarizer [--tag]`, then
      `mmsrarec summarize --critic --tuned [--tag]`).

    Every catalog item must have cached keywords. `tuned` alone is the default of
    `llm-recommender`: without a GRPO adapter or its catalog keywords it uses the item text
    and says so (in the log and in the returned description, which goes to `meta`), so that
    the two-command set-up needs no GRPO run. Other sources raise `NotPreparedError`.
    """
    if source == "none":
        return "item text", {}
    if dataset.cold and source != "base":
        # GRPO's data and R_collab read interactions of every item, the cold ones included.
        logger.warning("new-releases split: the GRPO summarizer's keywords would leak the cold "
                       "items' interactions; item texts without keywords")  # fmt: skip
        return "item text (new-releases split: no GRPO keywords)", {}
    if source == "base":
        name, fix = settings.model, "mmsrarec summarize --critic"
    elif source.partition(":")[0] == "tuned":
        from mmsrarec.training.adapters import tuned_summarizer_name

        tag = source.partition(":")[2]
        fix = "mmsrarec summarize --critic --tuned" + (f" --tag {tag}" if tag else "")
        try:
            name = tuned_summarizer_name(settings, tag)
        except NotPreparedError:
            if source != "tuned":
                raise
            logger.warning("no GRPO summarizer adapter: item texts without keywords")
            return "item text (no GRPO summarizer)", {}
    else:
        raise ValueError(f"unknown keyword source `{source}`")
    try:
        keywords = stored_keywords(settings, dataset, name)
    except NotPreparedError:
        keywords = {}
    missing = dataset.n_items - len(keywords)
    if missing:
        if source == "tuned":
            logger.warning("%d items lack `%s` keywords: item texts without keywords", missing,
                           name)  # fmt: skip
            return f"item text ({missing} items lack {name} keywords: run `{fix}`)", {}
        raise NotPreparedError(f"{missing} of {dataset.n_items} items have no `{name}` "
                               f"keywords: run `{fix}`")  # fmt: skip
    return name, keywords


def stored_keywords(settings: Settings, dataset: Dataset, summarizer: str) -> dict[str, list[str]]:
    """The summarizer's cached keywords of the catalog (`mmsrarec summarize`); items it has
    not summarized are left out."""
    from mmsrarec.summarization.cache import KeywordCache
    from mmsrarec.summarization.prompts import PROMPT_VERSION

    path = settings.cache_dir / "keywords.sqlite"
    if not path.exists():
        raise NotPreparedError(
            f"no keyword cache at `{path}`: run `mmsrarec summarize --critic` first"
        )
    with KeywordCache(path, summarizer, PROMPT_VERSION) as cache:
        return {k: v for k, v in cache.get_many(dataset.items).items() if v}


def _fingerprint(config, dataset, seed, sasrec, features, model: str) -> str:
    parts = {
        "format_version": FORMAT_VERSION, "config": config.digest(), "model": model,
        "sasrec": sasrec_fingerprint(sasrec.config, dataset, seed), "seed": seed,
        "features": None if features is None else hashlib.sha256(features.tobytes()).hexdigest(),
    }  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _saved_fingerprint(folder: Path) -> str | None:
    path = folder / "meta.json"
    return (
        json.loads(path.read_text(encoding="utf-8")).get("fingerprint") if path.exists() else None
    )


def _checkpoint_fingerprint(folder: Path) -> str | None:
    path = folder / "training.json"
    return (
        json.loads(path.read_text(encoding="utf-8")).get("fingerprint") if path.exists() else None
    )


def _plot(log: list[dict[str, float]], path: Path, title: str) -> None:
    from mmsrarec.training.plots import plot_curves

    rows = [{"step": row["epoch"], **row} for row in log]
    plot_curves(rows, ("loss", "valid_ndcg5"), path, f"{title}: loss and validation NDCG@5")
