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
    # New releases: the text fallback trained without ID dropout (control); on warm items,
    # the items' own text with ID dropout (does the text side lift rare targets?).
    "llm-recommender-no-id-dropout": {"id_dropout": 0.0},
    "llm-recommender-item-text-id-dropout": {"id_dropout": 0.25},
    # `mmsrarec demo`'s shorter schedule (2 of the 8 epochs): not the committed table's model
    "llm-recommender-quick": {"max_epochs": 2},
}
# Where each variant's item texts take their keywords (`summarization.keywords`):
# the GRPO summarizer's (with R_collab), the base summarizer's, the GRPO summarizer's trained
# without R_collab, or none. The controls above use the items' own text (`none`), as
# `llm-recommender-item-text` does.
KEYWORD_SOURCES = {"llm-recommender": "tuned", "llm-recommender-base-keywords": "base",
                   "llm-recommender-tuned-no-collab": "tuned:no-collab"}  # fmt: skip
# SASRec with frozen text vectors + bounded deltas as item embeddings ("Let It Go?"): scores
# items that have no interactions from their text.
SASREC_TEXT = "sasrec-text"
# SASRec trained again with seed + RESEED_OFFSET: an independent second run.
RESEEDED_SASREC = "sasrec-reseeded"
RESEED_OFFSET = 100
# Gated z-score fusions (fitted on validation): the full system and its baseline.
FUSIONS = {
    "mmsrarec": ("llm-recommender", "sasrec", "item-knn"),
    "cf-ensemble": ("sasrec", "item-knn"),
    "mmsrarec-id-only": ("llm-recommender-id-only", "sasrec", "item-knn"),  # control
    "mmsrarec-quick": ("llm-recommender-quick", "sasrec", "item-knn"),  # `mmsrarec demo`
    # What the LLM adds beyond one more collaborative model: a second SASRec run in its place.
    "cf-ensemble-two-sasrec": ("sasrec", RESEEDED_SASREC, "item-knn"),
    # The LLM four times, once per item text (the keyword sources and the items' own text).
    "mmsrarec-four-texts": ("llm-recommender", "llm-recommender-base-keywords",
                            "llm-recommender-tuned-no-collab", "llm-recommender-item-text",
                            "sasrec", "item-knn"),
    # New releases (controls): new items scored by the LLM recommender alone, and the
    # collaborative ensemble with the text-initialised SASRec for new items (no LLM at all).
    "mmsrarec-llm-new-items": ("llm-recommender", "sasrec", "item-knn"),
    "cf-ensemble-sasrec-text": ("sasrec", "item-knn"),
}  # fmt: skip
# The paper's yes/no prompt scorer, trained listwise with hybrid item tokens
# (`recommenders/yes_no.py`); it ranks the catalog by re-ranking SASRec's top items.
YES_NO = "llm-yes-no"
# Content baselines: they rank items from their text or fields alone (`content.py`), and the
# LLM's knowledge of how well known each item is (`fame.py`).
FAME = "llm-fame"
I2I = "llm-i2i"  # item-kNN where new items borrow their LLM text neighbours' similarities
CONTENT = ("content-knn", "genre-profile", "latest", FAME, I2I)
# Members a fusion adds only where an item has no ID (new releases; `FusionRecommender`): never
# fitted on data without new items, so `mmsrarec` there is its three members alone. Chosen on
# the new-releases split's validation (pseudo-cold items, benchmarks/coldstart/RESULTS.md).
NEW_ITEM_MEMBERS = {"mmsrarec": ("sasrec-text", FAME, I2I),
                    "cf-ensemble-sasrec-text": ("sasrec-text",)}  # fmt: skip
# SASRec whose top items come from an approximate-nearest-neighbour index over its item
# vectors, rescored exactly (`recommenders/ann.py`); its catalog scores are SASRec's.
SASREC_ANN = "sasrec-ann"
# Methods that score the whole catalog: what the graph's recommend node can use.
CATALOG_SCORERS = ("random", "most-popular", "item-knn", "sasrec", SASREC_TEXT, RESEEDED_SASREC,
                   SASREC_ANN, *CONTENT, *FUSIONS,
                   *LLM_VARIANTS, YES_NO)  # fmt: skip


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
    if name in CONTENT:
        return _content(name, settings)
    if name in FUSIONS:
        from mmsrarec.recommenders.fusion import FusionRecommender

        members = {member: build_recommender(member, settings) for member in FUSIONS[name]}
        new = {member: build_recommender(member, settings)
               for member in NEW_ITEM_MEMBERS.get(name, ())}  # fmt: skip
        return FusionRecommender(members, name, new)
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

    if name == SASREC_TEXT:
        return _sasrec_text(settings)
    sasrec = SASRecRecommender(save_dir=sasrec_dir(settings))
    if name == RESEEDED_SASREC:
        return Reseeded(sasrec, RESEED_OFFSET, name)
    if name == SASREC_ANN:
        from mmsrarec.recommenders.ann import ANNRecommender
        from mmsrarec.tools.ann import FaissItemIndex

        return ANNRecommender(sasrec, FaissItemIndex, name=name)
    return sasrec


def _sasrec_text(settings: Settings) -> Recommender:
    from mmsrarec.models.item_text import TextFeatures
    from mmsrarec.models.sasrec import SASRecConfig
    from mmsrarec.recommenders.sasrec import SASRecRecommender, sasrec_dir

    # The sentence encoder's vectors, as "Let It Go?" used E5's.
    recommender = SASRecRecommender(SASRecConfig(item_init="text"),
                                    sasrec_dir(settings, SASREC_TEXT),
                                    text=TextFeatures(settings, "minilm"))  # fmt: skip
    recommender.name = SASREC_TEXT
    return recommender


def _content(name: str, settings: Settings) -> Recommender:
    from mmsrarec.models.item_text import TextFeatures
    from mmsrarec.recommenders import content

    if name == FAME:
        from mmsrarec.recommenders.fame import FameRecommender

        return FameRecommender(TextFeatures(settings, "fame"))
    if name == I2I:
        from mmsrarec.recommenders.i2i import LLMI2IRecommender

        return LLMI2IRecommender(TextFeatures(settings, "llm"))
    if name == "genre-profile":
        return content.GenreProfileRecommender()
    if name == "latest":
        return content.LatestRecommender()
    return content.ContentKNNRecommender(TextFeatures(settings, "minilm"))
