"""The recommendation graph behind the evaluator's `Recommender` interface.

`mmsrarec-zeroshot`: the untrained graph (packaged LLM, no adapters). Each query runs the
graph once with the query's history and candidates; the recommender node's scores are the
candidate scores. Only the sampled protocol: scoring the whole catalog per user with an LLM
is the next issue's two-stage ranking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from mmsrarec.config import Settings
from mmsrarec.data import Dataset
from mmsrarec.errors import ConfigError
from mmsrarec.graph.context import GraphContext, GraphSettings
from mmsrarec.graph.factory import build_context
from mmsrarec.graph.graph import build_graph
from mmsrarec.models import ModelCache
from mmsrarec.recommenders.base import Query, Recommender


class GraphRecommender(Recommender):
    """Scores candidates by running the graph (without a checkpointer) per user."""

    name = "mmsrarec-zeroshot"

    def __init__(self, settings: Settings, run: GraphSettings | None = None) -> None:
        self.settings = settings
        self.run = run or GraphSettings()
        self.models = ModelCache(settings)
        self.context: GraphContext | None = None
        self.graph = build_graph()

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Nothing is trained; loads the models and builds the retrieval index for `seed`."""
        self.context = build_context(self.settings, dataset, self.models, self.run, seed=seed)

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        raise ConfigError("`mmsrarec-zeroshot` scores candidates only: use `--protocol sampled`")

    def score_candidates(self, queries: Sequence[Query]) -> list[np.ndarray]:
        if self.context is None:
            raise ConfigError("call `fit` before scoring")
        dataset = self.context.dataset
        rows = []
        for query in tqdm(queries, desc="graph", unit="user", leave=False):
            candidates = [dataset.item(i).item_id for i in query.candidates]
            output = self.graph.invoke(
                {
                    "user_id": query.user_id,
                    "history": [dataset.item(i).item_id for i in query.history],
                    "candidates": candidates,
                    "top_k": len(candidates),
                },
                context=self.context,
            )
            score_of = {rec["item_id"]: rec["score"] for rec in output["recommendations"]}
            rows.append(np.array([score_of[item_id] for item_id in candidates]))
        return rows
