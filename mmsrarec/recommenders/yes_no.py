"""The paper's yes/no scorer, trained: `p(yes) / (p(yes) + p(no))` for each candidate of the
graph's prompt, with a hybrid item token after every listed item and after the candidate.

    prompt  = keywords of the last n items, the similar users' next items, the candidate
    score   = logsumexp(yes) - logsumexp(no) at the answer token (sigmoid: the p(yes) share)

`fit(dataset, seed)` trains LoRA adapters on the packaged LLM and the item tokens
(`models/item_tokens.py`, ID part from the SASRec of the same seed) with a listwise loss over
each list's candidates, packed in one sequence (`scoring/packed.py`; the trainer is
`training/yes_no_trainer.py`). Full ranking re-ranks SASRec's top `rerank` unseen items and
keeps SASRec's order below them (the LLM cannot afford a prompt per catalog item).

Saved under `<run_dir>/yes-no/<dataset>/<name>/seed<k>/`: `weights.pt`, `manifest.json`
(what the weights were trained with: model, keyword cache, k, n_history, SASRec, settings)
and `meta.json` (training log), written last. `fit` retrains when the manifest differs;
`load` refuses a stale one.
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
from torch import nn

from mmsrarec.config import Settings
from mmsrarec.data import Dataset, Item
from mmsrarec.errors import ConfigError, NotPreparedError
from mmsrarec.models.device import model_device
from mmsrarec.models.item_lm import add_lora, trainable_state
from mmsrarec.models.item_text import (
    TextFeatures,
    model_identity,
    standardize,
    with_padding,
)
from mmsrarec.models.item_tokens import HybridItemTokens
from mmsrarec.models.llm import llm_source, load_llm
from mmsrarec.models.sasrec import SASRecConfig
from mmsrarec.recommenders.base import Query, Recommender, TopItems
from mmsrarec.recommenders.rerank import rerank_top, rerank_top_k
from mmsrarec.recommenders.sasrec import SASRecRecommender, sasrec_dir, sasrec_fingerprint
from mmsrarec.scoring.packed import ITEM_SLOT, Encoded, answer_margins, encode, pack
from mmsrarec.scoring.prompts import PROMPT_VERSION, build_prefix, candidate_suffix
from mmsrarec.scoring.yes_no import yes_no_token_ids
from mmsrarec.summarization.keywords import resolve_keywords
from mmsrarec.summarization.parse import parse_keywords
from mmsrarec.tools.retrieval_tokens import RetrievalTokens
from mmsrarec.training.checkpoints import TrainedFolder
from mmsrarec.training.plots import plot_curves
from mmsrarec.training.yes_no_trainer import YesNoConfig, train_yes_no
from mmsrarec.types import SimilarUser

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class YesNoModel(nn.Module):
    """The LoRA-adapted causal LM and the item tokens: everything training changes."""

    def __init__(self, lm: nn.Module, item_tokens: HybridItemTokens) -> None:
        super().__init__()
        self.lm, self.item_tokens = lm, item_tokens

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return trainable_state(self, also=("item_tokens.scale",))


class YesNoRecommender(Recommender):
    """`Recommender` over the trained yes/no prompt scorer.

    Args:
        settings: run settings (model, paths, Chroma server).
        config: prompt, model and training settings; None: those the saved weights were
            trained with (`YesNoConfig()` when there are none), so that the graph and the
            evaluator use whatever `mmsrarec train recommender` trained.
        name: method name (also the folder of its weights); default `default_name(config)`.
        progress: show tqdm bars.
        device: where it trains and scores (default: the GPU when there is one).
    """

    def __init__(self, settings: Settings, config: YesNoConfig | None = None,
                 name: str | None = None, progress: bool = True,
                 device: str | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.requested = config
        self.config = config or YesNoConfig()
        self.name = name or default_name(self.config)
        self.progress = progress
        self.device = torch.device(device) if device else model_device(settings)
        self.model: YesNoModel | None = None
        self.manifest: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}

    def save_dir(self, seed: int) -> Path:
        return scorer_dir(self.settings, self.name, seed)

    # ----- fit and load -----------------------------------------------------------------

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Reload the weights trained with the same manifest, else train them."""
        folder = TrainedFolder(self.save_dir(seed), marker="manifest.json")
        self.config = self.requested or saved_config(folder.path) or YesNoConfig()
        self._prepare(dataset, seed)
        if folder.saved_key() == self.manifest:
            self._load_weights(folder)
            return
        checkpoint = folder.start(self.manifest)
        model = self._require_model()
        result = train_yes_no(model, self.list_margins, dataset, self.config, seed, checkpoint,
                              self.progress)  # fmt: skip
        self.meta = folder.publish(model.trainable_state(), {
            "best_examples": result.best_examples, "best_valid_ndcg5": result.best_valid_ndcg5,
            "train_seconds": result.seconds, "log": result.log,
        }, marker=self.manifest)  # fmt: skip
        rows = [{"step": row["examples"], **row} for row in result.log]
        plot_curves(rows, ("loss", "valid_ndcg5"), folder.path / "training.png",
                    f"{self.name}: listwise loss and validation NDCG@5")  # fmt: skip

    def load(self, dataset: Dataset, seed: int) -> None:
        """Load trained weights; never train.

        Raises:
            NotPreparedError: nothing trained for this seed, or trained with another manifest
                (model, keyword cache, k, n_history, SASRec or settings).
        """
        folder = self.save_dir(seed)
        self.config = self.requested or saved_config(folder) or YesNoConfig()
        saved = saved_manifest(folder)
        fix = f"run `mmsrarec train recommender --seeds {seed + 1}" + (
            f" --keywords {self.config.keywords}`" if self.config.keywords != "tuned" else "`"
        )
        if saved is None:
            raise NotPreparedError(f"no trained yes/no scorer in `{folder}`: {fix}")
        self._prepare(dataset, seed)
        if saved != self.manifest:
            changed = sorted(k for k in self.manifest if saved.get(k) != self.manifest[k])
            raise NotPreparedError(f"the yes/no scorer in `{folder}` was trained with other "
                                   f"{', '.join(changed)}: {fix}")  # fmt: skip
        self._load_weights(TrainedFolder(folder, marker="manifest.json"))

    def _prepare(self, dataset: Dataset, seed: int) -> None:
        """Keywords, SASRec, the LLM with fresh adapters and item tokens, the manifest."""
        config = self.config
        self.manifest, self.keywords = expected_manifest(self.settings, dataset, config, seed)
        sasrec = SASRecRecommender(save_dir=sasrec_dir(self.settings), progress=self.progress)
        sasrec.fit(dataset, seed)
        self.sasrec, self.dataset = sasrec, dataset
        llm = load_llm(self.settings.model, self.settings)
        features = with_padding(
            standardize(TextFeatures(self.settings, "llm", self.keywords, llm).catalog(dataset))
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            words = llm.model.get_input_embeddings().weight
            tokens = HybridItemTokens(
                sasrec.model.item_embedding.weight.detach().cpu(), torch.from_numpy(features),
                llm.model.config.hidden_size, float(words.detach().pow(2).mean().sqrt()),
            )  # fmt: skip
            lm = add_lora(llm.model, config.lora_rank)
        self.llm = llm
        self.model = YesNoModel(lm, tokens).to(self.device)
        self.yes_ids, self.no_ids = (torch.tensor(i) for i in yes_no_token_ids(llm.tokenizer))
        self.retriever = None
        if config.k_similar:
            self.retriever = RetrievalTokens(self.settings, dataset, sasrec, config.k_similar)

    def _load_weights(self, folder: TrainedFolder) -> None:
        state, self.meta = folder.load(self.device)
        self._require_model().load_state_dict(state, strict=False)
        self._require_model().eval()
        logger.info("%s: loaded from %s", self.name, folder.path)

    # ----- prompts and scoring ------------------------------------------------------------

    def keywords_of(self, item: Item) -> list[str]:
        """The item's cached keywords, else the words of its own text (as the graph shows)."""
        return self.keywords.get(item.item_id) or parse_keywords(item.text or item.title)

    def prompts(
        self, lists: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[tuple[Encoded, list[Encoded]]]:
        """The encoded prefix and candidate suffixes of each (user, history, candidates)."""
        llm, dataset, n = self.llm, self.dataset, self.config.n_history
        retrieved: list[list[int]] = [[] for _ in lists]
        if self.retriever is not None:
            retrieved = self.retriever.tokens([(user, history) for user, history, _ in lists])
        out = []
        for (_, history, candidates), similar in zip(lists, retrieved, strict=True):
            recent = [dataset.item(i) for i in list(history)[-n:]]
            collaborative = [self._neighbour_pick(dataset.item(i)) for i in similar]
            prefix = build_prefix(llm, [(i.title, self.keywords_of(i)) for i in recent], "",
                                  collaborative, ITEM_SLOT)  # fmt: skip
            slotted = [*list(history)[-n:], *similar]
            suffixes = [encode(llm.tokenizer, candidate_suffix(llm, dataset.item(c), ITEM_SLOT),
                               [c], first=False) for c in candidates]  # fmt: skip
            out.append((encode(llm.tokenizer, prefix, slotted, first=True), suffixes))
        return out

    def _neighbour_pick(self, item: Item) -> SimilarUser:
        """A similar user's next item as the prompt lists it (title and keywords)."""
        return SimilarUser(user_id="", similarity=0.0, next_item_id=item.item_id,
                           next_title=item.title, keywords=self.keywords_of(item))  # fmt: skip

    def list_margins(
        self, lists: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[torch.Tensor]:
        """Yes/no margins [len(candidates)] of each list, in one packed forward per list."""
        model = self._require_model()
        autocast = torch.autocast(self.device.type, torch.bfloat16, enabled=self.config.bf16)
        with autocast:
            return [answer_margins(model.lm, pack(prefix, suffixes), model.item_tokens,
                                   self.yes_ids, self.no_ids)
                    for prefix, suffixes in self.prompts(lists)]  # fmt: skip

    @torch.inference_mode()
    def score_candidates(self, queries: Sequence[Query]) -> list[np.ndarray]:
        """`p(yes) / (p(yes) + p(no))` of each query's candidates (float64)."""
        margins = self.list_margins([(q.user_id, q.history, q.candidates) for q in queries])
        return [torch.sigmoid(m.double()).cpu().numpy() for m in margins]

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        """SASRec's top `rerank` unseen items re-ranked by p(yes), above every other item in
        SASRec's order (`rerank.rerank_top`)."""
        return rerank_top(self.sasrec.score_catalog(queries), queries, self.config.rerank,
                          lambda query: self.score_candidates([query])[0])  # fmt: skip

    def top_k(self, queries: Sequence[Query], k: int) -> list[TopItems]:
        """The `k` best of SASRec's top `rerank` unseen items by p(yes) (`rerank_top_k`)."""
        return rerank_top_k(self.sasrec, queries, self.config.rerank, k,
                            lambda query: self.score_candidates([query])[0])  # fmt: skip

    def _require_model(self) -> YesNoModel:
        if self.model is None:
            raise NotPreparedError(f"`{self.name}` is not fitted: call `fit(dataset, seed)`")
        return self.model


def expected_manifest(
    settings: Settings, dataset: Dataset, config: YesNoConfig, seed: int
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(the manifest weights for `seed` must have been trained with, the prompts' keywords
    per item id), without loading a model: the model's identity, the keyword cache's
    contents, k, n_history, the SASRec of the seed and every setting."""
    resolved = resolve_keywords(settings, dataset, config.keywords)
    source, keywords = resolved.description, resolved.keywords
    _, folder, _ = llm_source(settings.model, settings)
    keyword_digest = hashlib.sha256(json.dumps(keywords, sort_keys=True).encode()).hexdigest()
    manifest = {
        "format_version": FORMAT_VERSION, "prompt_version": PROMPT_VERSION,
        "model": model_identity(folder, settings.model),
        "keywords": {"source": source, "sha256": keyword_digest},
        "k_similar": config.k_similar, "n_history": config.n_history,
        "sasrec": sasrec_fingerprint(SASRecConfig(), dataset, seed), "seed": seed,
        "config": config.to_dict(),
    }  # fmt: skip
    return manifest, keywords


def resume_key(settings: Settings, dataset: Dataset, name: str, seed: int) -> str:
    """A digest of the manifest that scorer `name` must have for `seed` (with the settings it
    was trained with, as `YesNoRecommender(config=None)` loads it): evaluation results saved
    under another key are stale."""
    config = saved_config(scorer_dir(settings, name, seed)) or YesNoConfig()
    manifest, _ = expected_manifest(settings, dataset, config, seed)
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def scorer_dir(settings: Settings, name: str, seed: int) -> Path:
    """Where scorer `name` of `seed` is saved: `<run_dir>/yes-no/<dataset>/<name>/seed<k>`."""
    return settings.run_dir / "yes-no" / settings.dataset / name / f"seed{seed}"


def default_name(config: YesNoConfig) -> str:
    """`llm-yes-no`, or `llm-yes-no-<source>` for prompts with other than the tuned keywords
    (each keyword source is trained into a folder of its own)."""
    source = config.keywords.replace(":", "-")
    return "llm-yes-no" if source == "tuned" else f"llm-yes-no-{source}"


def saved_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a completely saved scorer in `folder`, else None."""
    return _json(folder / "manifest.json")


def saved_config(folder: Path) -> YesNoConfig | None:
    """The settings the scorer saved in `folder` was trained with, else None."""
    saved = saved_manifest(folder)
    try:
        return YesNoConfig(**saved["config"]) if saved else None
    except (TypeError, KeyError, ConfigError):  # another version's settings: train anew
        return None


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
