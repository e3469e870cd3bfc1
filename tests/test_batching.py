"""`serving.batching.BatchedRanker`: concurrent calls are scored together, each gets exactly
the rows the ranker gives it alone, errors reach every caller of the batch, and new items
wait for the batches in flight."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.serving.batching import BatchedRanker


class Slow(Recommender):
    """Row = a function of the query's history; each call takes 50 ms and is recorded."""

    name = "slow"
    reads_text = True

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.added = 0

    def score_catalog(self, queries):
        self.calls.append(len(queries))
        time.sleep(0.05)
        if any(q.user_id == "boom" for q in queries):
            raise RuntimeError("scorer down")
        return np.array(
            [[len(q.history) * 10 + i + self.added for i in range(6)] for q in queries], dtype=float
        )

    def add_items(self, items):
        time.sleep(0.05)
        self.added += len(items)


def at_once(call, n: int) -> None:
    """`call(0)` .. `call(n - 1)`, each in its own thread, started together; waits for all."""
    threads = [threading.Thread(target=call, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_calls_are_scored_together_with_their_own_rows():
    inner = Slow()
    ranker = BatchedRanker(inner, max_batch=8, lanes=1)
    queries = [Query(f"u{n}", tuple(range(n)), (1, 3)) for n in range(12)]
    results: dict[int, np.ndarray] = {}

    def call(n: int) -> None:
        results[n] = ranker.score_candidates([queries[n]])[0]

    at_once(call, 12)
    for n in range(12):
        assert results[n].tolist() == [n * 10 + 1, n * 10 + 3]
    assert sum(inner.calls) == 12 and max(inner.calls) > 1 and max(inner.calls) <= 8
    assert len(inner.calls) < 12  # fewer calls than requests
    assert ranker.name == "slow" and ranker.reads_text


class Parts(Slow):
    """Slow, whose scores come in two parts (as a fusion's members), recorded per call."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []

    def score_catalog(self, queries):
        self.kinds.append("catalog")
        return super().score_catalog(queries)

    def contributions(self, queries):
        self.kinds.append("parts")
        rows = Slow.score_catalog(self, queries)
        return [{"half": row[list(q.candidates)] / 2, "other half": row[list(q.candidates)] / 2}
                for row, q in zip(rows, queries, strict=True)]  # fmt: skip


def test_contributions_are_batched_apart_from_catalog_calls():
    inner = Parts()
    ranker = BatchedRanker(inner, max_batch=8, lanes=1)
    queries = [Query(f"u{n}", tuple(range(n)), (1, 3)) for n in range(12)]
    results: dict[int, object] = {}

    def call(n: int) -> None:
        if n % 2:
            results[n] = ranker.contributions([queries[n]])[0]
        else:
            results[n] = ranker.score_candidates([queries[n]])[0]

    at_once(call, 12)
    for n in range(12):
        expected = [n * 10 + 1, n * 10 + 3]
        if n % 2:
            assert set(results[n]) == {"half", "other half"}
            assert (results[n]["half"] + results[n]["other half"]).tolist() == expected
        else:
            assert results[n].tolist() == expected
    assert sum(inner.calls) == 12 and len(inner.calls) < 12  # batched, each call one kind
    assert {"catalog", "parts"} == set(inner.kinds)


def test_a_lone_call_is_not_delayed_and_errors_reach_the_callers():
    inner = Slow()
    ranker = BatchedRanker(inner, max_batch=8, lanes=2)
    started = time.perf_counter()
    assert ranker.score_catalog([Query("a", (1,))]).shape == (1, 6)
    assert time.perf_counter() - started < 0.5 and inner.calls == [1]
    with pytest.raises(RuntimeError, match="scorer down"):
        ranker.score_catalog([Query("boom", (1,))])
    assert ranker.score_catalog([Query("b", (1, 2))])[0, 0] == 20  # still serving


def test_new_items_wait_for_batches_in_flight():
    inner = Slow()
    ranker = BatchedRanker(inner, max_batch=4, lanes=2)
    seen: list[float] = []
    scoring = threading.Thread(
        target=lambda: seen.append(ranker.score_catalog([Query("a", ())])[0, 0])
    )
    scoring.start()
    time.sleep(0.01)
    ranker.add_items(["x"])  # waits for the batch above, which scores without it
    scoring.join()
    assert seen == [0.0] and ranker.score_catalog([Query("a", ())])[0, 0] == 1.0
