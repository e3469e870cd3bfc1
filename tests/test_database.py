"""Threads and web sessions in the embedded SQLite store and in a real PostgreSQL server
(started by the tests with Debian's package; skipped with the reason where it is missing).

The same checks run on both backends: threads and their traces outlive the process that
wrote them, sessions survive a restart of the store, idle sessions are evicted by age and
never while in use."""

from __future__ import annotations

import operator
from typing import Annotated

import pytest
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from mmsrarec.config import Settings
from mmsrarec.database import open_checkpointer, open_tables
from mmsrarec.errors import ConfigError
from mmsrarec.web.sessions import SessionStore


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path) -> Settings:
    url = request.getfixturevalue("database_url") if request.param == "postgres" else None
    return Settings(run_dir=tmp_path / "runs", cache_dir=tmp_path / "cache", database_url=url)


class Counter(TypedDict):
    count: Annotated[int, operator.add]  # each run adds 1 to what the thread holds


def counting_graph(checkpointer):
    builder = StateGraph(Counter)
    builder.add_node("bump", lambda state: {"count": 1})
    builder.add_edge(START, "bump")
    builder.add_edge("bump", END)
    return builder.compile(checkpointer=checkpointer)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_survive_a_restart_of_the_store(settings):
    first = SessionStore.from_settings(settings)
    token = first.issue()
    first.add_thread(token, "thread-a")
    first.add_thread(token, "thread-b")
    other = first.issue()
    del first  # a new store object on the same database, as after a server restart

    again = SessionStore.from_settings(settings)
    assert again.known(token)
    assert again.threads(token) == ["thread-a", "thread-b"]
    assert again.owns(token, "thread-a")
    assert not again.owns(other, "thread-a")
    assert not again.known("not-a-token")


def test_only_a_hash_of_each_token_is_stored(settings):
    store = SessionStore.from_settings(settings)
    token = store.issue()
    rows = open_tables(settings, "chat").run("SELECT token_sha256 FROM web_sessions")
    assert rows and all(token not in row[0] for row in rows)


def test_idle_sessions_are_evicted_by_age_never_in_use(settings):
    clock = Clock()
    store = SessionStore(open_tables(settings, "chat"), max_idle_s=3600, clock=clock)
    idle, busy, fresh = store.issue(), store.issue(), store.issue()
    for token in (idle, busy, fresh):
        store.add_thread(token, f"thread-of-{token[:6]}")
    clock.now += 3000
    assert store.known(fresh)  # used 3000 s later: 600 s idle at eviction time
    clock.now += 1200
    with store.using(busy):
        assert store.evict_idle() == 1
    assert not store.known(idle) and store.threads(idle) == []
    assert store.known(busy) and store.threads(busy) == [f"thread-of-{busy[:6]}"]
    assert store.known(fresh)
    clock.now += 3601
    assert store.evict_idle() == 2


def test_threads_outlive_the_process_that_wrote_them(settings):
    config = {"configurable": {"thread_id": "t1"}}
    counting_graph(open_checkpointer(settings, "chat")).invoke({"count": 0}, config)
    counting_graph(open_checkpointer(settings, "chat")).invoke({"count": 0}, config)
    state = counting_graph(open_checkpointer(settings, "chat")).get_state(config)
    assert state.values["count"] == 2
    # the recommendation graph's store is a separate one
    assert counting_graph(open_checkpointer(settings, "recommend")).get_state(config).values == {}


def test_the_sqlite_default_writes_the_run_dir(tmp_path):
    settings = Settings(run_dir=tmp_path / "runs")
    SessionStore.from_settings(settings).issue()
    assert settings.chat_db.exists() and not settings.graph_db.exists()


def test_an_unreachable_postgres_is_one_clear_error(tmp_path):
    pytest.importorskip("psycopg_pool", reason="psycopg missing: pip install -e '.[postgres]'")
    from services import free_port

    url = f"postgresql://someone:secret@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(ConfigError, match="cannot reach `database_url`") as caught:
        open_checkpointer(Settings(run_dir=tmp_path, database_url=url), "chat")
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_database_url_that_is_not_postgres_is_refused():
    from mmsrarec.config import load_settings

    with pytest.raises(ConfigError, match="database_url"):
        load_settings(database_url="mysql://x@y/z")


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    from mmsrarec.cli import app
    from mmsrarec.cli.common import run_guarded

    code = run_guarded(app, args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_reads_threads_from_the_database_url(settings, capsys, monkeypatch):
    counting_graph(open_checkpointer(settings, "recommend")).invoke(
        {"count": 0}, {"configurable": {"thread_id": "user-7-abc"}}
    )
    if settings.database_url:
        monkeypatch.setenv("MMSRAREC_DATABASE_URL", settings.database_url)
    code, out, _ = cli(["trace", "list", "--run-dir", str(settings.run_dir)], capsys)
    assert code == 0 and out.split() == ["user-7-abc", "graph"]  # id, then which graph


def test_cli_database_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    code, _, err = cli(["serve", "--database-url", "mysql://x@y/z"], capsys)
    assert code == 2 and "database_url" in err and len(err.strip().splitlines()) == 1

    pytest.importorskip("psycopg_pool", reason="psycopg missing: pip install -e '.[postgres]'")
    from services import free_port

    monkeypatch.setenv("MMSRAREC_DATABASE_URL", f"postgresql://x@127.0.0.1:{free_port()}/db")
    code, _, err = cli(["trace", "list", "--run-dir", str(tmp_path)], capsys)
    assert code == 2 and "cannot reach `database_url`" in err
    assert len(err.strip().splitlines()) == 1


def test_postgres_without_the_extra_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if `.[postgres]` were not installed
    settings = Settings(run_dir=tmp_path, database_url="postgresql://x@127.0.0.1:1/db")
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[postgres\]'"):
        open_tables(settings, "chat")


def test_the_recommendation_graph_keeps_its_threads_in_the_store(settings, tiny_dataset):
    from chat_fakes import (
        FirstUsersRetriever,
        FixedCritic,
        MemoryKeywords,
        OverlapScorer,
        WordSummarizer,
    )

    from mmsrarec.graph.graph import list_threads, thread_trace
    from mmsrarec.graph.session import GraphSession
    from mmsrarec.nodes.context import GraphContext, GraphSettings
    from mmsrarec.trace import verify_trace

    context = GraphContext(
        dataset=tiny_dataset,
        summarizer=WordSummarizer(),
        critic=FixedCritic(),
        keywords=MemoryKeywords(),
        retriever=FirstUsersRetriever(tiny_dataset),
        scorer=OverlapScorer(),
        settings=GraphSettings(k_similar=2, n_history=3),
    )
    out = GraphSession(settings, context=context).recommend("u3", top=3)
    assert len(out["recommendations"]) == 3

    store = open_checkpointer(settings, "recommend")  # read back as `mmsrarec trace` would
    assert list_threads(store) == [out["thread_id"]]
    records = thread_trace(store, out["thread_id"])
    assert [r["node"] for r in records][:2] == ["load_user", "summarize"]
    assert verify_trace(records) is None


def test_a_postgres_restart_is_survived_by_a_running_store(postgres, database_url, tmp_path):
    store = SessionStore.from_settings(Settings(run_dir=tmp_path, database_url=database_url))
    token = store.issue()
    store.add_thread(token, "thread-a")
    postgres.stop()  # every pooled connection is cut
    postgres.start()
    assert store.known(token) and store.threads(token) == ["thread-a"]


def test_exclusive_lets_one_process_at_a_time_through(settings):
    import threading

    from mmsrarec.database import exclusive

    inside, released, order = threading.Event(), threading.Event(), []

    def first() -> None:
        with exclusive(settings, "index-build"):
            order.append("first in")
            inside.set()
            released.wait(10)
            order.append("first out")

    def second() -> None:
        inside.wait(10)
        with exclusive(settings, "index-build"):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    threads[1].join(timeout=1.0)  # PostgreSQL: still waiting for the lock
    released.set()
    for thread in threads:
        thread.join(timeout=10)
    if settings.database_url:
        assert order == ["first in", "first out", "second in"]
    else:  # one process, embedded stores: nothing to exclude
        assert order == ["first in", "second in", "first out"]
