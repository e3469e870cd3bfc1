"""Method names the evaluator knows, and how each is built from the run settings."""

from __future__ import annotations

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError
from mmsrarec.recommenders.base import Recommender

# The LLM recommender (hybrid item tokens) and its controls: one setting changed each.
LLM_VARIANTS: dict[str, dict[str, object]] = {
    "llm-recommender": {},
    "llm-recommender-id-only": {"item_tokens": "id"},
    "llm-recommender-text-only": {"item_tokens": "text"},
    "llm-recommender-permuted-text": {"text_features": "permuted"},
    "llm-recommender-random-init": {"backbone": "random"},
    "llm-recommender-minilm": {"text_features": "minilm"},
    "llm-recommender-retrieval": {"k_similar": 3},
    "llm-recommender-text-init-normal": {"text_init": "normal"},
}
# Variants whose item texts hold the summarizer's cached, critic-scored keywords (run
# `mmsrarec summarize --critic` first) instead of the item's own text: variant -> base.
KEYWORD_VARIANTS = {"llm-recommender-keywords": "llm-recommender"}
# Gated z-score fusions (fitted on validation): the full system and its baseline.
FUSIONS = {
    "mmsrarec": ("llm-recommender", "sasrec", "item-knn"),
    "cf-ensemble": ("sasrec", "item-knn"),
    "mmsrarec-id-only": ("llm-recommender-id-only", "sasrec", "item-knn"),  # control
}
# The paper's yes/no scorer in the graph (`mmsrarec train ...` adapters) and its ablations.
YES_NO = (
    "mmsrarec-yes-no-zeroshot",
    "mmsrarec-yes-no",
    "mmsrarec-yes-no-no-retrieval",
    "mmsrarec-yes-no-no-rl",
    "mmsrarec-yes-no-no-sft",
)
METHODS = ("random", "most-popular", "item-knn", "sasrec", *FUSIONS, *LLM_VARIANTS,
           *KEYWORD_VARIANTS, *YES_NO)  # fmt: skip
# Methods that score the whole catalog in one pass: what the graph's recommend node can use.
CATALOG_SCORERS = tuple(m for m in METHODS if m not in YES_NO)
REFERENCES = ("random", "most-popular")  # always evaluated beside the requested methods


def check_methods(names: list[str]) -> None:
    """Fail early, before any data is loaded, on a method name nobody knows."""
    for name in names:
        if name not in METHODS:
            raise ConfigError(f"unknown method `{name}`; known: {', '.join(METHODS)}")


def build_method(name: str, settings: Settings) -> Recommender:
    """A fresh, unfitted recommender for `name`.

    Args:
        name: one of `METHODS`.
        settings: run settings; SASRec saves its checkpoints under
            `<run_dir>/sasrec/<dataset>`.

    Raises:
        ConfigError: `name` is not a known method.
    """
    check_methods([name])
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

        members = {member: build_method(member, settings) for member in FUSIONS[name]}
        return FusionRecommender(members, name)
    if name in LLM_VARIANTS or name in KEYWORD_VARIANTS:
        from mmsrarec.models.item_lm import ItemLMConfig
        from mmsrarec.recommenders.llm_recommender import LLMRecommender

        config = ItemLMConfig(**LLM_VARIANTS[KEYWORD_VARIANTS.get(name, name)])  # type: ignore[arg-type]
        summarizer = settings.model if name in KEYWORD_VARIANTS else None
        return LLMRecommender(settings, config, name, keyword_summarizer=summarizer)
    if name == "mmsrarec-yes-no-zeroshot":
        from mmsrarec.recommenders.graph import GraphRecommender

        return GraphRecommender(settings)
    if name in YES_NO:  # trained adapters (`mmsrarec train ...`) and ablations
        from mmsrarec.recommenders.trained import TrainedGraphRecommender

        return TrainedGraphRecommender(settings, name)
    from mmsrarec.recommenders.sasrec import SASRecRecommender  # torch: import only when asked

    return SASRecRecommender(save_dir=settings.run_dir / "sasrec" / settings.dataset)
