"""Keywords written in the background: the graph's own critic loop on a worker thread.

A server puts a `Backfill` in its `GraphContext`: a request that meets items without
keywords hands them over and goes on (`nodes.summarizer`, `nodes.retrieval`); the worker
runs them through the graph's `summarize <-> critique` nodes (the same loop, threshold and
rounds as a graph run), a batch at a time, and the critic node stores the kept keywords.
A first `serve` hands over the whole catalogue's missing items at start; a progress bar on
stderr shows how many are done and the time left.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from mmsrarec.data import Item
from mmsrarec.graph import GraphBuilder
from mmsrarec.nodes.context import GraphContext

logger = logging.getLogger(__name__)
BATCH = 8  # items per summarizer call


def critic_loop_graph():
    """`summarize <-> critique` alone: the recommendation graph's loop, nothing else."""
    builder = GraphBuilder()
    for name in ("load_user", "retrieve", "recommend"):
        builder.remove(name)
    return builder.compile()


class Backfill:
    """A `KeywordBackfill` on one worker thread.

    Args:
        context: The current graph context (called per batch: the served one may be swapped).
        progress: Show a bar on stderr.
    """

    def __init__(self, context: Callable[[], GraphContext], progress: bool = True) -> None:
        self.context = context
        self.graph = critic_loop_graph()
        self._queue: dict[str, Item] = {}
        self._seen: set[str] = set()  # queued, being summarized or done in this process
        self._busy = 0
        self._cond = threading.Condition()
        self._stop = False
        self._bar = tqdm(total=0, unit="item", desc="keywords (background)", disable=not progress)
        self._thread = threading.Thread(target=self._work, name="keyword-backfill", daemon=True)
        self._thread.start()

    def request(self, items: Sequence[Item]) -> None:
        with self._cond:
            fresh = [item for item in items if item.item_id not in self._seen]
            for item in fresh:
                self._seen.add(item.item_id)
                self._queue[item.item_id] = item
            if fresh:
                self._bar.total += len(fresh)
                self._bar.refresh()
                self._cond.notify()

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is queued or running; False if `timeout_s` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout_s)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        self._bar.close()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stop)
                if self._stop:
                    return
                batch = [self._queue.pop(key) for key in list(self._queue)[:BATCH]]
                self._busy = len(batch)
            try:
                self._summarize(batch)
            except Exception:  # one bad batch must not stop the worker; the log says why
                logger.exception("background keywords for %d items failed", len(batch))
            with self._cond:
                self._busy = 0
                self._bar.update(len(batch))
                self._cond.notify_all()

    def _summarize(self, batch: list[Item]) -> None:
        served = self.context()
        settings = served.settings.model_copy(update={"n_history": len(batch)})
        context = dataclasses.replace(served, settings=settings, backfill=None)
        ids = [item.item_id for item in batch]
        self.graph.invoke(
            {"user_id": "backfill", "history": ids, "candidates": [], "top_k": 1},
            context=context,
        )


class NoBackfill:
    """A `KeywordBackfill` that writes nothing (`server.background_keywords = false`): items
    without keywords stay without until `mmsrarec summarize` writes them."""

    def request(self, items: Sequence[Item]) -> None:
        pass

    def drain(self, timeout_s: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass
