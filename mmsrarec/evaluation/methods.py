"""Method names the evaluator knows, and how each is built from the run settings."""

from __future__ import annotations

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError
from mmsrarec.recommenders.base import Recommender

METHODS = (
    "random",
    "most-popular",
    "item-knn",
    "sasrec",
    "mmsrarec-zeroshot",
    "mmsrarec",
    "mmsrarec-no-retrieval",
    "mmsrarec-no-rl",
    "mmsrarec-no-sft",
)
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
    if name == "mmsrarec-zeroshot":
        from mmsrarec.recommenders.graph import GraphRecommender

        return GraphRecommender(settings)
    if name.startswith("mmsrarec"):  # trained adapters (`mmsrarec train ...`) and ablations
        from mmsrarec.recommenders.trained import TrainedGraphRecommender

        return TrainedGraphRecommender(settings, name)
    from mmsrarec.recommenders.sasrec import SASRecRecommender  # torch: import only when asked

    return SASRecRecommender(save_dir=settings.run_dir / "sasrec" / settings.dataset)
