"""The live rows (`serving/store.py`) on both backends, SQLite and a real PostgreSQL: writers
racing from many threads (and, on PostgreSQL, connections) get gap-free `seq` numbers in
commit order, a retried idempotency key never doubles a row, and a model version published
through PostgreSQL reaches another server."""

from __future__ import annotations

import threading

import pytest

from mmsrarec.config import Settings
from mmsrarec.database import open_tables
from mmsrarec.serving.store import IdempotencyConflict, ItemExists, LiveStore


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request, tmp_path):
    if request.param == "sqlite":
        return Settings(run_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    url = request.getfixturevalue("database_url")
    return Settings(run_dir=tmp_path / "runs", cache_dir=tmp_path / "cache", database_url=url)


def test_racing_writers_get_gap_free_numbers_and_retries_store_nothing(settings):
    store = LiveStore(open_tables(settings, "recommend"))
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(12):
                key = f"w{n}-{i // 2}"  # every event sent twice, as a client retrying would
                store.add_feedback(f"u{n}", f"m{i // 2}", float(i // 2), "interaction", key)
        except BaseException as exc:  # reported below: a thread's error would be lost
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    rows = store.feedback()
    assert [row.seq for row in rows] == list(range(1, 37))  # 6 writers x 6 distinct events
    assert sorted((r.user_id, r.item_id) for r in rows) == sorted(
        (f"u{n}", f"m{i}") for n in range(6) for i in range(6)
    )
    assert store.last_seq("live_feedback") == 36
    assert [e.item_id for e in store.feedback_of("u3")] == [f"m{i}" for i in range(6)]


def test_items_keys_and_versions(settings):
    store = LiveStore(open_tables(settings, "recommend"))
    first = store.add_item("a", "A", "", None, key="k")
    assert store.add_item("a", "A", "", None, key="k").replayed
    with pytest.raises(IdempotencyConflict):
        store.add_item("b", "B", "", None, key="k")
    with pytest.raises(ItemExists):
        store.add_item("a", "Another A", "", None)
    store.add_item("c", "C", "words", None)
    assert [row.item_id for row in store.items_after(0)] == ["a", "c"]
    assert [row.item_id for row in store.items_after(first.row.seq)] == ["c"]
    assert store.latest_version("item-knn") is None
    one = store.publish_version("item-knn", "/models/1", 0, 2)
    assert store.publish_version("item-knn", "/models/1", 0, 2) == one  # published once
    two = store.publish_version("item-knn", "/models/2", 5, 2)
    assert store.latest_version("item-knn") == two and two.label == "v2"
    assert store.latest_version("sasrec") is None
