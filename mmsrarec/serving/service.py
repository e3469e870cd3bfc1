"""`RecommendationService`: the recommendation graph served to applications.

    service = RecommendationService.from_settings(settings)
    service.recommend_user("196", k=10)                  # the full history, whole catalogue
    service.recommend_history(["50", "172"], k=5)        # an anonymous session
    service.similar_items("50", k=5)                     # what is chosen after this item
    service.add_feedback("196", "302", time.time())      # moves 196's next answer at once
    service.add_item("A new film", "A quiet drama.")     # recommendable at once, by its text

Every answer has the shape of `mmsrarec recommend --json`: `recommendations` (item id,
title, score, evidence), the traced run's `thread_id` (`mmsrarec trace show`), the `model`
and its `model_version`.

What is served is one immutable `Served` value (graph context, model version, how many live
items it holds). A request reads it once and runs on it to the end; adding items or loading
a retrained model builds a new value on the side and swaps the reference, so requests in
flight finish on the model they started with.

- History: the user's whole sequence in the prepared data, then their live feedback (by
  timestamp, then arrival). New feedback is read at each request, so it counts at once.
- New items: stored (`store.LiveStore`), appended to the catalogue and handed to the
  ranker's `add_items` (scored from their text until a retrained model knows them), their
  keywords queued for the background critic loop (`backfill.Backfill`).
- Other processes (replicas, the CLI, `mmsrarec train --from-store`) write to the same
  database: `sync` takes in their items and the newest published model version (a server
  calls it every `server.sync_every_s`).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from mmsrarec.config import Settings
from mmsrarec.data import Dataset, Item, load_dataset
from mmsrarec.database import open_checkpointer, open_tables
from mmsrarec.errors import ConfigError, DataError
from mmsrarec.graph import GraphContext, GraphSettings, build_context, build_graph, thread_config
from mmsrarec.graph.factory import build_ranker
from mmsrarec.models import ModelCache
from mmsrarec.recommenders.base import Recommender
from mmsrarec.serving.backfill import Backfill, NoBackfill
from mmsrarec.serving.batching import BatchedRanker
from mmsrarec.serving.catalog import KnownItemsRetriever, as_item, extended
from mmsrarec.serving.store import LiveStore, ModelVersion, Written
from mmsrarec.serving.writes import DEFAULT_KIND, LiveWriter, UnknownItem

logger = logging.getLogger(__name__)
ANONYMOUS = "anonymous"  # the user id of runs from a given history
BASE_VERSION = "v0"  # the model fitted on the prepared data alone


class UnknownUser(DataError):
    """Neither the prepared data nor the live feedback has this user."""


@dataclass(frozen=True)
class Served:
    """What requests run on: swapped whole, never changed in place."""

    context: GraphContext
    version: str  # BASE_VERSION or a published `ModelVersion.label`
    items_seq: int  # live items with `seq <= items_seq` are in `context.dataset`

    @property
    def model(self) -> str:
        ranker = self.context.ranker
        return ranker.name if ranker is not None else self.context.scorer.name


class RecommendationService:
    """See the module docstring.

    Args:
        settings: Run settings (database, run dir, seeds).
        context: The graph's parts on the prepared dataset (`build_context`).
        store: Live data (default: the recommendation store's database).
        checkpointer: Where runs are traced (default: that database too).
        background: Never summarize in a request: items without keywords go to a worker
            thread (or nowhere, with `server.background_keywords` off).
    """

    def __init__(
        self,
        settings: Settings,
        context: GraphContext,
        *,
        store: LiveStore | None = None,
        checkpointer: BaseCheckpointSaver | None = None,
        background: bool = False,
    ) -> None:
        self.settings = settings
        self.prepared = context.dataset
        self.store = store or LiveStore(open_tables(settings, "recommend"))
        self.writer = LiveWriter(settings, self.prepared, self.store)
        self.graph = build_graph(checkpointer or open_checkpointer(settings, "recommend"))
        self.backfill: Backfill | NoBackfill | None = None
        if background:
            on = settings.server.background_keywords
            self.backfill = Backfill(lambda: self.served.context) if on else NoBackfill()
        self.listeners: list[Callable[[GraphContext], None]] = []  # told of each swap
        self.on_update: Callable[[str, dict[str, Any]], None] | None = None  # node updates
        self._lock = threading.RLock()  # one writer of `served` at a time
        self._told_no_items = False
        known = set(self.prepared.item_index)
        served = dataclasses.replace(
            context,
            ranker=self._batched(context.ranker),
            retriever=KnownItemsRetriever(context.retriever, known) if context.retriever else None,
            backfill=self.backfill,
            # the older-history sentence only enters the yes/no prompt: no LLM call per request
            preference=context.preference if context.ranker is None else None,
        )
        self.served = Served(served, BASE_VERSION, 0)
        self.sync()

    @classmethod
    def from_settings(
        cls, settings: Settings, run: GraphSettings | None = None, **kwargs: Any
    ) -> RecommendationService:
        """The default parts (`build_context`) on `settings.dataset`."""
        dataset = load_dataset(settings.dataset_dir)
        context = build_context(
            settings, dataset, ModelCache(settings), run, seed=settings.seeds[0]
        )
        return cls(settings, context, **kwargs)

    # ----- reads ---------------------------------------------------------------------------

    def history(self, user_id: str, served: Served | None = None) -> list[str]:
        """The user's whole history: the prepared sequence, then the live feedback.

        Raises:
            DataError: neither knows `user_id`.
        """
        dataset = (served or self.served).context.dataset
        prepared = [dataset.item(i).item_id for i in self.prepared.sequences.get(user_id, [])]
        live = [event.item_id for event in self.store.feedback_of(user_id)]
        if not prepared and not live:
            raise UnknownUser(
                f"unknown user id `{user_id}`: send feedback for it first, or its history to "
                "`POST /api/recommend`"
            )
        return prepared + live

    def recommend_user(
        self,
        user_id: str,
        k: int | None = None,
        exclude_seen: bool = True,
        thread_id: str | None = None,
        debias: float | None = None,
        evidence_window: int | None = None,
    ) -> dict[str, Any]:
        """The whole catalogue ranked after the user's whole history (`debias` and
        `evidence_window`: as in `recommend_history`)."""
        served = self._current()
        history = self.history(user_id, served)
        excluded = history if exclude_seen else ()
        return self._run(served, user_id, history, k, excluded, thread_id=thread_id,
                         debias=debias, evidence_window=evidence_window)  # fmt: skip

    def recommend_history(
        self,
        history: Sequence[str],
        k: int | None = None,
        *,
        exclude_seen: bool = True,
        exclude: Sequence[str] = (),
        only: Sequence[str] | None = None,
        user_id: str = ANONYMOUS,
        frozen: bool = False,
        thread_id: str | None = None,
        debias: float | None = None,
        evidence_window: int | None = None,
    ) -> dict[str, Any]:
        """The catalogue ranked after `history` (raw item ids, oldest first), for a user the
        data does not know; never items in `exclude`, only items in `only` when given.

        Args:
            user_id: Who the run is for (in the trace; a known user's neighbours skip it).
            frozen: Rank the user's frozen 1 + 20 candidates of the evaluation instead
                (`GraphSettings.stage`); `exclude` and `only` do not apply.
            thread_id: Run on this thread (default: a new one).
            debias: The popularity-bias control (None = `GraphSettings.debias`).
            evidence_window: History items tried for the cited history (0 = none, the
                cheapest; None = `GraphSettings.evidence_window`).
        """
        if not history:
            raise DataError("`history` is empty: give at least one item id")
        served = self._current(list(history) + list(exclude) + list(only or ()))
        excluded = [*history, *exclude] if exclude_seen else list(exclude)
        return self._run(served, user_id, list(history), k, excluded, only, frozen,
                         thread_id, debias, evidence_window)  # fmt: skip

    def similar_items(self, item_id: str, k: int | None = None) -> dict[str, Any]:
        """The items most likely chosen after `item_id` (the ranker after a one-item history;
        an item added while serving is scored from its text)."""
        served = self._current([item_id])
        return self._run(served, ANONYMOUS, [item_id], k, [item_id])

    def _current(self, item_ids: Sequence[str] = ()) -> Served:
        """The served value; synced first when it lacks one of `item_ids` (another process
        may have added it a moment ago)."""
        served = self.served
        if any(item_id not in served.context.dataset.item_index for item_id in item_ids):
            self.sync()
            served = self.served
        return served

    def _run(
        self,
        served: Served,
        user_id: str,
        history: list[str],
        k: int | None,
        exclude: Sequence[str],
        only: Sequence[str] | None = None,
        frozen: bool = False,
        thread_id: str | None = None,
        debias: float | None = None,
        evidence_window: int | None = None,
    ) -> dict[str, Any]:
        dataset = served.context.dataset
        _known(dataset, [*history, *(only or ())])
        excluded = set(exclude)
        pool = (
            [item.item_id for item in dataset.items] if only is None else list(dict.fromkeys(only))
        )
        # no candidates given: the graph takes the user's frozen ones
        candidates = [] if frozen else [item_id for item_id in pool if item_id not in excluded]
        answer = {
            "thread_id": None,
            "user_id": user_id,
            "model": served.model,
            "model_version": served.version,
            "recommendations": [],
            "similar_users": [],
        }
        if not candidates and not frozen:  # the filters left nothing: an empty answer, no run
            return answer
        thread_id = thread_id or f"api-{secrets.token_hex(10)}"
        inputs = {
            "user_id": user_id,
            "history": history,
            "candidates": candidates,
            "top_k": k or served.context.settings.top_k,
        }
        if debias is not None:
            inputs["debias"] = debias
        if evidence_window is not None:
            inputs["evidence_window"] = evidence_window
        # durability="exit": the run is stored once, at its end (a server answers many)
        config = thread_config(thread_id)
        updates = self.graph.stream(
            inputs, config, context=served.context, stream_mode="updates", durability="exit"
        )
        for update in updates:
            for node, values in update.items():
                if self.on_update is not None:
                    self.on_update(node, values or {})
        output = self.graph.get_state(config).values
        return {
            **answer,
            "thread_id": thread_id,
            "recommendations": output["recommendations"],
            "similar_users": output["similar_users"],
        }

    # ----- writes --------------------------------------------------------------------------

    def add_feedback(
        self,
        user_id: str,
        item_id: str,
        timestamp: float,
        kind: str = DEFAULT_KIND,
        idempotency_key: str | None = None,
    ) -> Written:
        """Store one interaction; the user's next answer reads it (`LiveWriter.add_feedback`)."""
        self._current([item_id])
        return self.writer.add_feedback(user_id, item_id, timestamp, kind, idempotency_key)

    def add_item(
        self,
        title: str,
        description: str = "",
        image: bytes | None = None,
        item_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Written:
        """Store a new item and serve it at once (`LiveWriter.add_item`)."""
        ranker = self.served.context.ranker
        if ranker is not None and not ranker.reads_text:
            raise ConfigError(
                f"scorer `{ranker.name}` cannot score items it was not trained on (it reads no "
                "text): serve one that does (`--scorer mmsrarec`, `content-knn`, ...), or add "
                "items with `mmsrarec items add` and retrain (`mmsrarec train --from-store`)"
            )
        written = self.writer.add_item(title, description, image, item_id, idempotency_key)
        self.sync_items()
        return written

    # ----- taking in what others wrote -----------------------------------------------------

    def sync(self) -> None:
        """Take in live items and a newer model version written by any process."""
        self.sync_items()
        latest = self.store.latest_version(self.scorer)
        if latest is not None and latest.label != self.served.version:
            self.load_version(latest)

    @property
    def scorer(self) -> str:
        return self.served.context.settings.scorer

    def sync_items(self) -> None:
        """Append the live items this process has not served yet."""
        with self._lock:
            served = self.served
            rows = self.store.items_after(served.items_seq)
            if not rows:
                return
            items = [as_item(row, self.settings.run_dir) for row in rows]
            ranker = served.context.ranker
            if ranker is not None and not _add_items(ranker, items):
                if not self._told_no_items:
                    logger.warning(
                        "%d new item(s) stored, but scorer `%s` cannot score items it was not "
                        "trained on: they are served after `mmsrarec train --from-store`",
                        len(items),
                        ranker.name,
                    )
                    self._told_no_items = True
                return
            context = dataclasses.replace(
                served.context, dataset=extended(served.context.dataset, items)
            )
            self._swap(Served(context, served.version, rows[-1].seq))
        logger.info(
            "catalogue: %d new item(s) served (%s)",
            len(items),
            ", ".join(item.item_id for item in items[:5]),
        )
        if self.backfill is not None:
            self.backfill.request(items)

    def load_version(self, version: ModelVersion) -> None:
        """Build the ranker of `version` on the side, then swap it in."""
        folder = Path(version.path)
        settings = self.settings.model_copy(update={"run_dir": folder})
        trained = load_dataset(folder / "data" / self.prepared.name)
        ranker = build_ranker(settings, trained, self.scorer, self.settings.seeds[0])
        with self._lock:
            served = self.served
            current, base = served.context.dataset.items, trained.items
            shorter, longer = sorted((current, base), key=len)
            if [i.item_id for i in shorter] != [i.item_id for i in longer[: len(shorter)]]:
                raise DataError(f"model `{folder}` was trained on another catalogue order")
            dataset, items_seq = trained, version.items_seq  # the version's catalogue...
            if len(current) > len(base) and _add_items(ranker, current[len(base) :]):
                dataset, items_seq = served.context.dataset, served.items_seq  # ...or more
            catalogue = extended(self.prepared, dataset.items[self.prepared.n_items :])
            context = dataclasses.replace(
                served.context, ranker=self._batched(ranker), dataset=catalogue
            )
            self._swap(Served(context, version.label, items_seq))
            self.sync_items()  # live items the version has not seen, if any
        logger.info("model %s %s is served (from %s)", self.scorer, version.label, folder)

    def _batched(self, ranker: Recommender | None) -> Recommender | None:
        """`ranker` with concurrent requests scored together (`server.batch_max`)."""
        server = self.settings.server
        if ranker is None or server.batch_max == 1:
            return ranker
        return BatchedRanker(ranker, server.batch_max, server.batch_lanes)

    def _swap(self, served: Served) -> None:
        self.served = served
        for listener in self.listeners:
            listener(served.context)

    def close(self) -> None:
        if self.backfill is not None:
            self.backfill.close()


def _add_items(ranker: Recommender, items: list[Item]) -> bool:
    """Hand `items` to the ranker (`Recommender.add_items`); False when it reads no text."""
    if not ranker.reads_text:
        return False
    ranker.add_items(items)
    return True


def _known(dataset: Dataset, item_ids: Sequence[str]) -> None:
    for item_id in item_ids:
        if item_id not in dataset.item_index:
            raise UnknownItem(f"unknown item id `{item_id[:80]}` in the catalogue")
