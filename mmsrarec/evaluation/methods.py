"""Method names the evaluator knows, and how each is built from the run settings.

The catalog recommenders come from `recommenders.methods`; the yes/no variants run the
whole graph per user (`graph.recommender`, `graph.trained`).
"""

from __future__ import annotations

from collections.abc import Callable

from mmsrarec.config import Settings
from mmsrarec.data import Dataset
from mmsrarec.errors import ConfigError
from mmsrarec.recommenders.base import Recommender
from mmsrarec.recommenders.methods import CATALOG_SCORERS, build_recommender

# The paper's yes/no scorer in the graph (`mmsrarec train summarizer|recommender`) and its
# ablations.
YES_NO = (
    "mmsrarec-yes-no-zeroshot",
    "mmsrarec-yes-no",
    "mmsrarec-yes-no-no-retrieval",
    "mmsrarec-yes-no-no-rl",
    "mmsrarec-yes-no-no-sft",
)
METHODS = (*CATALOG_SCORERS, *YES_NO)
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
    if name == "mmsrarec-yes-no-zeroshot":
        from mmsrarec.graph.recommender import GraphRecommender

        return GraphRecommender(settings)
    if name in YES_NO:  # trained adapters (`mmsrarec train ...`) and ablations
        from mmsrarec.graph.trained import TrainedGraphRecommender

        return TrainedGraphRecommender(settings, name)
    return build_recommender(name, settings)


def resume_key(name: str, settings: Settings, dataset: Dataset) -> Callable[[int], str] | None:
    """For a method that loads the trained yes/no scorer, the seed's `yes_no.resume_key`
    (saved evaluations made with other trained weights are stale); else None."""
    from mmsrarec.graph.trained import VARIANTS, scorer_name
    from mmsrarec.recommenders.methods import YES_NO as TRAINED_YES_NO

    if name == TRAINED_YES_NO:
        scorer = TRAINED_YES_NO
    elif name in VARIANTS and VARIANTS[name][1]:
        scorer = scorer_name(name)
    else:
        return None
    from mmsrarec.recommenders import yes_no

    return lambda seed: yes_no.resume_key(settings, dataset, scorer, seed)
