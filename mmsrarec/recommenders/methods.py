"""The catalog recommenders by name: each scores every item for a user in one pass, so the
evaluator and the graph's recommend node (`GraphSettings.scorer`) can both use them.

The evaluator's full list (`evaluation.methods.METHODS`) adds the yes/no graph variants,
which wrap the graph and so live above it (`graph/recommender.py`, `graph/trained.py`).
"""

from __future__ import annotations

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError
from mmsrarec.recommenders.base import Recommender, Reseeded

# The LLM recommender (hybrid item tokens) and its controls: one setting changed each.
LLM_VARIANTS: dict[str, dict[str, object]] = {
    "llm-recommender": {},
    "llm-recommender-item-text": {},
    "llm-recommender-base-keywords": {},
    "llm-recommender-tuned-no-collab": {},
    "llm-recommender-id-only": {"item_tokens": "id"},
    "llm-recommender-text-only": {"item_tokens": "text"},
    "llm-recommender-permuted-text": {"text_features": "permuted"},
    "llm-recommender-random-init": {"backbone": "random"},
    "llm-recommender-minilm": {"text_features": "minilm"},
    "llm-recommender-retrieval": {"k_similar": 3},
    "llm-recommender-text-init-normal": {"text_init": "normal"},
}
# Where each variant's item texts take their keywords (`llm_recommender.resolve_keywords`):
# the GRPO summarizer's (with R_collab), the base summarizer's, the GRPO summarizer's trained
# without R_collab, or none. The controls above use the items' own text (`none`), as
# `llm-recommender-item-text` does.
KEYWORD_SOURCES = {"llm-recommender": "tuned", "llm-recommender-base-keywords": "base",
                   "llm-recommender-tuned-no-collab": "tuned:no-collab"}  # fmt: skip
# SASRec trained again with seed + RESEED_OFFSET: an independent second run.
RESEEDED_SASREC = "sasrec-reseeded"
RESEED_OFFSET = 100
# Gated z-score fusions (fitted on validation): the full system and its baseline.
FUSIONS = {
    "mmsrarec": ("llm-recommender", "sasrec", "item-knn"),
    "cf-ensemble": ("sasrec", "item-knn"),
    "mmsrarec-id-only": ("llm-recommender-id-only", "sasrec", "item-knn"),  # control
    # What the LLM adds beyond one more collaborative model: a second SASRec run in its place.
    "cf-ensemble-two-sasrec": ("sasrec", RESEEDED_SASREC, "item-knn"),
    # The LLM four times, once per item text (the keyword sources and the items' own text).
    "mmsrarec-four-texts": ("llm-recommender", "llm-recommender-base-keywords",
                            "llm-recommender-tuned-no-collab", "llm-recommender-item-text",
                            "sasrec", "item-knn"),
}  # fmt: skip
# The paper's yes/no prompt scorer, trained listwise with hybrid item tokens
# (`recommenders/yes_no.py`); it ranks the catalog by re-ranking SASRec's top items.
YES_NO = "llm-yes-no"
# SASRec whose top items come from an approximate-nearest-neighbour index over its item
# vectors, rescored exactly (`recommenders/ann.py`); its catalog scores are SASRec's.
SASREC_ANN = "sasrec-ann"
# Methods that score the whole catalog: what the graph's recommend node can use.
CATALOG_SCORERS = ("random", "most-popular", "item-knn", "sasrec", RESEEDED_SASREC, SASREC_ANN,
                   *FUSIONS, *LLM_VARIANTS, YES_NO)  # fmt: skip


def build_recommender(name: str, settings: Settings) -> Recommender:
    """A fresh, unfitted catalog recommender for `name`.

    Args:
        name: one of `CATALOG_SCORERS`.
        settings: run settings; SASRec saves its checkpoints under `sasrec_dir(settings)`.

    Raises:
        ConfigError: `name` is not a catalog recommender.
    """
    if name not in CATALOG_SCORERS:
        raise ConfigError(f"unknown method `{name}`; known: {', '.join(CATALOG_SCORERS)}")
    # Imported when asked: most of them load torch.
    if name == "random":
        from mmsrarec.recommenders.random import RandomRecommender

        return RandomRecommender()
    if name == "most-popular":
        from mmsrarec.recommenders.popularity import PopularityRecommender

        return PopularityRecommender()
    if name == "item-knn":
        from mmsrarec.recommenders.itemknn import ItemKNNRecommender

        return ItemKNNRecommender()
    if name in FUSIONS:
        from mmsrarec.recommenders.fusion import FusionRecommender

        members = {member: build_recommender(member, settings) for member in FUSIONS[name]}
        return FusionRecommender(members, name)
    if name == YES_NO:
        from mmsrarec.recommenders.yes_no import YesNoRecommender

        return YesNoRecommender(settings, name=name)
    if name in LLM_VARIANTS:
        from mmsrarec.models.item_lm import ItemLMConfig
        from mmsrarec.recommenders.llm_recommender import LLMRecommender

        config = ItemLMConfig(**LLM_VARIANTS[name])  # type: ignore[arg-type]
        return LLMRecommender(settings, config, name,
                              keywords_from=KEYWORD_SOURCES.get(name, "none"))  # fmt: skip
    from mmsrarec.recommenders.sasrec import SASRecRecommender, sasrec_dir

    sasrec = SASRecRecommender(save_dir=sasrec_dir(settings))
    if name == RESEEDED_SASREC:
        return Reseeded(sasrec, RESEED_OFFSET, name)
    if name == SASREC_ANN:
        from mmsrarec.recommenders.ann import ANNRecommender
        from mmsrarec.tools.ann import FaissItemIndex

        return ANNRecommender(sasrec, FaissItemIndex, name=name)
    return sasrec
