"""`GraphSession`: the default graph, its parts and a checkpointer, loaded once and run per
user. Used by `mmsrarec recommend`, the demo and the web app; Python users can do the same
with `build_context` + `build_graph` directly."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from mmsrarec.config import Settings
from mmsrarec.data import Dataset, load_dataset
from mmsrarec.database import open_checkpointer
from mmsrarec.graph.factory import build_context
from mmsrarec.graph.graph import build_graph, thread_config
from mmsrarec.models import ModelCache
from mmsrarec.nodes.context import GraphContext, GraphSettings

OnUpdate = Callable[[str, dict[str, Any]], None]


class GraphSession:
    """Loads the dataset, the models and the retrieval index once; `recommend` runs a thread.

    Args:
        settings: Run settings (dataset, model, paths).
        run: Graph settings.
        checkpointer: Where threads are kept (default: `settings.graph_db` or, with
            `settings.database_url`, PostgreSQL).
        context: Ready parts (default: `build_context` from `settings`).
        dataset: The loaded dataset (default: read from `settings.dataset_dir`).
    """

    def __init__(
        self,
        settings: Settings,
        run: GraphSettings | None = None,
        *,
        checkpointer: BaseCheckpointSaver | None = None,
        context: GraphContext | None = None,
        dataset: Dataset | None = None,
    ) -> None:
        self.settings = settings
        self.run = run or GraphSettings()
        if context is not None:
            dataset = context.dataset
        self.dataset = dataset or load_dataset(settings.dataset_dir)
        self.context = context or build_context(
            settings, self.dataset, ModelCache(settings), self.run, seed=settings.seeds[0]
        )
        self.checkpointer = checkpointer or open_checkpointer(settings, "recommend")
        self.graph = build_graph(self.checkpointer)

    def history_of(self, user: str) -> list[str]:
        """The user's visible history at the run's stage (raw item ids)."""
        return [self.dataset.item(i).item_id for i in self.dataset.history(user, self.run.stage)]

    def unseen_items(self, history: Sequence[str]) -> list[str]:
        """Every catalog item id not in `history`, in catalog order."""
        seen = set(history)
        return [item.item_id for item in self.dataset.items if item.item_id not in seen]

    def recommend(
        self,
        user: str,
        *,
        history: Sequence[str] | None = None,
        candidates: Sequence[str] | None = None,
        all_items: bool = False,
        top: int = 10,
        thread: str | None = None,
        on_update: OnUpdate | None = None,
        debias: float | None = None,
        evidence_window: int | None = None,
    ) -> dict[str, Any]:
        """Run the graph on a new (or the given) thread.

        Args:
            user: Raw user id (may be new when `history` is given).
            history: Raw item ids, chronological; default: the user's history in the dataset.
            candidates: Items to rank; default: the user's frozen sampled candidates.
            all_items: Rank every item not in the history instead.
            top: Recommendations returned.
            thread: Thread id (default: a new unguessable one).
            on_update: Called with (node, update) as each node finishes.
            debias: Popularity-bias control (`GraphSettings.debias`); None = the run's.
            evidence_window: History items tried for the cited history
                (`GraphSettings.evidence_window`; 0 = none, the cheapest); None = the run's.

        Returns:
            `thread_id`, `user_id`, `recommendations`, `similar_users`.
        """
        history = list(history) if history else []
        if all_items:
            candidates = self.unseen_items(history or self.history_of(user))
        thread_id = thread or f"user-{user}-{uuid.uuid4().hex[:12]}"
        inputs = {
            "user_id": user,
            "history": history,
            "candidates": list(candidates or []),
            "top_k": top,
        }
        if debias is not None:
            inputs["debias"] = debias
        if evidence_window is not None:
            inputs["evidence_window"] = evidence_window
        config = thread_config(thread_id)
        for update in self.graph.stream(
            inputs, config, context=self.context, stream_mode="updates"
        ):
            for node, values in update.items():
                if on_update is not None:
                    on_update(node, values or {})
        output = self.graph.get_state(config).values
        return {
            "thread_id": thread_id,
            "user_id": user,
            "recommendations": output["recommendations"],
            "similar_users": output["similar_users"],
        }
