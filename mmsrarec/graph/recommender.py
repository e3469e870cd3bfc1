"""The recommendation graph behind the evaluator's `Recommender` interface.

`mmsrarec-yes-no-zeroshot`: the untrained graph (packaged LLM, no adapters). Each query runs the
graph once with the query's history and candidates; the recommender node's scores are the
candidate scores. Only the sampled protocol here; full ranking goes through
`trained.TwoStageRecommender`.

Evaluated graphs follow METHOD.md's two choices that the interactive graph relaxes:
- the prompt holds the last n items' keywords, the collaborative keywords and the candidate,
  and no sentence on the older history (the trained scorer's prompts have none either);
- summarization is an offline stage: `fit` summarizes the whole catalog once into the keyword
  cache (one critic-scored round per item, resumable), so a query only retrieves and scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from mmsrarec.config import Settings
from mmsrarec.data import Dataset
from mmsrarec.errors import ConfigError
from mmsrarec.graph.factory import build_context
from mmsrarec.graph.graph import build_graph
from mmsrarec.models import ModelCache
from mmsrarec.nodes.context import GraphContext, GraphSettings
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.summarization import summarize_catalog


class GraphRecommender(Recommender):
    """Scores candidates by running the graph (without a checkpointer) per user."""

    name = "mmsrarec-yes-no-zeroshot"

    def __init__(self, settings: Settings, run: GraphSettings | None = None) -> None:
        self.settings = settings
        # This recommender is the paper's yes/no prompt scorer, whatever the default node uses,
        # evaluated as trained: the serving default's popularity-bias control is off (the
        # evaluation measures it on its own, `recommenders.debias.Debiased`).
        self.run = (run or GraphSettings()).model_copy(update={"scorer": "yes-no", "debias": 0.0})
        self.models = ModelCache(settings)
        self.context: GraphContext | None = None
        self.graph = build_graph()

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Nothing is trained; loads the models, builds the retrieval index for `seed` and
        summarizes the catalog items the keyword cache lacks."""
        self.context = build_context(self.settings, dataset, self.models, self.run, seed=seed,
                                     preference=False)  # fmt: skip
        summarize_offline(self.context)

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        raise ConfigError(
            "`mmsrarec-yes-no-zeroshot` scores candidates only: use `--protocol sampled`"
        )

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


def summarize_offline(context: GraphContext, batch_size: int = 16) -> None:
    """METHOD.md's offline summarization stage: every catalog item not yet in the cache."""
    summarize_catalog(context.dataset.items, context.summarizer, context.keywords,
                      context.critic, batch_size=batch_size)  # fmt: skip
