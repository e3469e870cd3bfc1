"""A bounded pool for chat turns: parallel across threads, serial within one, with a timeout.

    pool = TurnPool(workers=2, queue=16, timeout_s=120)
    result = await pool.run(thread_id, lambda: service.chat(thread_id, message))

- at most `workers` turns run at once (worker threads), turns of different threads in
  parallel;
- turns of one thread run one after another, in arrival order (the checkpointer thread is
  read and written by each turn);
- at most `workers + queue` turns are accepted at once: beyond that `run` raises `PoolFull`
  (503 with `Retry-After`) instead of queueing without bound;
- a turn that has not finished `timeout_s` after it was accepted raises `TurnTimeout` (504).
  A turn still waiting is cancelled; one already running cannot be stopped, so it finishes
  (its reply is stored in the thread) and keeps its thread's place until then.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class PoolFull(Exception):
    """Too many turns accepted; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy with other turns: retry in {retry_after} s")
        self.retry_after = retry_after


class TurnTimeout(Exception):
    """A turn took longer than the pool's timeout."""


class TurnPool:
    """See the module docstring. Use from one event loop."""

    def __init__(self, workers: int, queue: int, timeout_s: float) -> None:
        self.workers, self.capacity, self.timeout_s = workers, workers + queue, timeout_s
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="turn")
        self._accepted = 0
        self._tails: dict[str, asyncio.Event] = {}  # per thread: set when its last turn ends
        self._mean_s = 1.0  # running mean of turn durations, for Retry-After

    @property
    def accepted(self) -> int:
        """Turns waiting or running."""
        return self._accepted

    def retry_after(self) -> int:
        """Seconds after which a slot is likely free: the queue ahead over the workers."""
        return max(1, math.ceil(self._mean_s * self._accepted / self.workers))

    async def run(self, key: str, call: Callable[[], T]) -> T:
        """`call()` on a worker once the previous turn of `key` has ended.

        Raises:
            PoolFull: `workers + queue` turns are already accepted.
            TurnTimeout: No result within `timeout_s` (see the module docstring).
        """
        if self._accepted >= self.capacity:
            raise PoolFull(self.retry_after())
        loop = asyncio.get_running_loop()
        self._accepted += 1
        previous, finished = self._tails.get(key), asyncio.Event()
        self._tails[key] = finished
        submitted: Future[T] | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                if previous is not None:
                    await previous.wait()
                submitted = self._executor.submit(self._timed, call)
                return await asyncio.shield(asyncio.wrap_future(submitted))
        except TimeoutError:
            raise TurnTimeout(
                f"the turn took longer than {self.timeout_s:g} s; its reply will be in the "
                "thread's messages when it finishes"
            ) from None
        finally:
            if submitted is None or submitted.cancel() or submitted.done():
                self._release(key, finished)
            else:  # running: the thread's next turn waits for it
                submitted.add_done_callback(
                    lambda _: loop.call_soon_threadsafe(self._release, key, finished)
                )

    def _timed(self, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return call()
        finally:
            self._mean_s = 0.8 * self._mean_s + 0.2 * (time.perf_counter() - started)

    def _release(self, key: str, finished: asyncio.Event) -> None:
        self._accepted -= 1
        finished.set()
        if self._tails.get(key) is finished:
            del self._tails[key]
