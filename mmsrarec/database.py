"""Where threads and web sessions are kept: one store per graph (`recommend`, `chat`).

- Embedded default: a SQLite file in the run dir per store (`graph.sqlite`, `chat.sqlite`).
- `database_url = "postgresql://..."`: one PostgreSQL database shared by every process
  (replicas, CLI), a schema per store (`mmsrarec_recommend`, `mmsrarec_chat`), so the two
  graphs' threads stay apart as they do in two SQLite files.

`open_checkpointer(settings, store)` gives LangGraph's saver for a store; `open_tables`
a small DB-API handle on the same database for our own tables (the web sessions);
`exclusive(settings, name)` one process at a time across replicas (index builds);
`thread_trace`, `thread_error` and `thread_ids` read threads without loading any model.
PostgreSQL needs the `postgres` extra (`pip install -e '.[postgres]'`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from mmsrarec.config import Settings
from mmsrarec.errors import ConfigError, DataError

Store = Literal["recommend", "chat"]
# The channel of the pending write LangGraph keeps for a node that raised (its `ERROR`
# constant is private since 1.0; `StateSnapshot.tasks[].error` needs a compiled graph).
ERROR_CHANNEL = "__error__"
CONNECT_TIMEOUT_S = 10
POOL_SIZE = 4
LOCK_POLL_S = 0.2


def sqlite_path(settings: Settings, store: Store) -> Path:
    """The store's SQLite file in the run dir."""
    return settings.graph_db if store == "recommend" else settings.chat_db


def schema(store: Store) -> str:
    """The store's PostgreSQL schema."""
    return f"mmsrarec_{store}"


def open_sqlite(path: Path, *, autocommit: bool = False) -> sqlite3.Connection:
    """A WAL-mode connection usable from any thread (callers serialise their writes).
    `SqliteSaver` commits its own transactions; `Tables` runs one statement each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    if autocommit:
        connection.isolation_level = None
    connection.execute("PRAGMA journal_mode=WAL")
    return connection


def sqlite_checkpointer(path: Path | None) -> BaseCheckpointSaver:
    """SQLite checkpointer at `path` (created with its folder), or in memory for `None`."""
    return InMemorySaver() if path is None else SqliteSaver(open_sqlite(path))


def open_checkpointer(settings: Settings, store: Store) -> BaseCheckpointSaver:
    """LangGraph's checkpointer for `store`: PostgreSQL with `database_url`, else SQLite."""
    if settings.database_url is None:
        return sqlite_checkpointer(sqlite_path(settings, store))
    from langgraph.checkpoint.postgres import PostgresSaver

    saver = PostgresSaver(_pool(settings.database_url, store))
    with _setup_lock(settings.database_url, store):
        saver.setup()
    return saver


class Tables:
    """A few statements on one database, written once for both backends: SQL with `?`
    placeholders (rewritten to `%s` for psycopg) and only syntax both accept
    (`INSERT ... ON CONFLICT`, `RETURNING`). Build it with `open_tables`."""

    def __init__(self, sqlite: sqlite3.Connection | None = None, pool: Any = None,
                 setup_lock: Callable[[], Any] | None = None) -> None:  # fmt: skip
        self._sqlite, self._pool, self._setup_lock = sqlite, pool, setup_lock
        self._lock = threading.Lock()

    @classmethod
    def sqlite(cls, path: Path | None) -> Tables:
        """Tables in the SQLite file `path`, or in memory for `None`."""
        if path is None:
            return cls(sqlite=sqlite3.connect(":memory:", check_same_thread=False,
                                              isolation_level=None))  # fmt: skip
        return cls(sqlite=open_sqlite(path, autocommit=True))

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Execute one statement in its own transaction; the rows it returns."""
        if self._sqlite is not None:
            with self._lock:
                cursor = self._sqlite.execute(sql, params)
                return cursor.fetchall()
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params)
            return [tuple(row.values()) for row in cur.fetchall()] if cur.description else []

    def setup(self, statements: list[str]) -> None:
        """Run `CREATE ... IF NOT EXISTS` statements, safely beside other processes."""
        if self._setup_lock is None:
            for sql in statements:
                self.run(sql)
            return
        with self._setup_lock():
            for sql in statements:
                self.run(sql)


def open_tables(settings: Settings, store: Store) -> Tables:
    """`Tables` on the store's database: its SQLite file, or its schema in `database_url`."""
    if settings.database_url is None:
        return Tables.sqlite(sqlite_path(settings, store))
    return Tables(
        pool=_pool(settings.database_url, store),
        setup_lock=lambda: _setup_lock(settings.database_url, store),
    )


def thread_config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def thread_trace(checkpointer: BaseCheckpointSaver, thread_id: str) -> list[dict[str, Any]]:
    """The trace records stored for `thread_id`.

    Raises:
        DataError: no such thread.
    """
    saved = checkpointer.get_tuple(thread_config(thread_id))
    if saved is None:
        raise DataError(
            f"no thread `{thread_id}` in the checkpoint store: see `mmsrarec trace list`"
        )
    return list(saved.checkpoint["channel_values"].get("trace", []))


def thread_error(checkpointer: BaseCheckpointSaver, thread_id: str) -> str | None:
    """The error a thread's last run stopped on (LangGraph keeps it as a pending write of
    the failed node), or None when its last run finished."""
    saved = checkpointer.get_tuple(thread_config(thread_id))
    for _, channel, value in (saved.pending_writes or []) if saved is not None else []:
        if channel == ERROR_CHANNEL:
            return str(value)
    return None


def thread_ids(settings: Settings, store: Store) -> list[str]:
    """The store's thread ids, most recent first, read from LangGraph's `checkpoints` table
    without loading a checkpoint (a server's store holds one thread per API answer)."""
    tables = open_tables(settings, store)
    try:
        rows = tables.run(
            "SELECT thread_id FROM checkpoints GROUP BY thread_id "
            "ORDER BY MAX(checkpoint_id) DESC"  # ids are time-ordered UUIDs (uuid6)
        )
    except Exception as exc:  # no run stored yet: the saver creates the table on first use
        if "checkpoints" not in str(exc):
            raise
        return []
    return [str(row[0]) for row in rows]


def exclusive(settings: Settings, name: str) -> Any:
    """A context in which no other process on the same `database_url` holds `name`: replicas
    starting together build the shared Chroma collections once, the others wait and reuse
    them. Without `database_url` (one process, embedded stores) it does nothing."""
    if settings.database_url is None:
        return nullcontext()
    return _advisory_lock(_pool(settings.database_url, "chat"), f"mmsrarec-{name}")


@contextmanager
def _advisory_lock(pool: Any, key: str) -> Iterator[None]:
    """A session-level PostgreSQL advisory lock (released by the server if this process dies).

    Taken by polling `pg_try_advisory_lock`, not by a blocking `pg_advisory_lock`: a statement
    left waiting would hold a snapshot, and LangGraph's migrations (`CREATE INDEX
    CONCURRENTLY`) in the process holding the lock would wait for it: a deadlock.
    """
    conn = pool.getconn()
    try:
        query = "SELECT pg_try_advisory_lock(hashtext(%s)) AS taken"
        while not conn.execute(query, (key,)).fetchone()["taken"]:
            time.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
    finally:
        pool.putconn(conn)


_POOLS: dict[tuple[str, str], Any] = {}
_POOLS_LOCK = threading.Lock()


def _pool(url: str, store: Store) -> Any:
    """One psycopg pool per (database, store) in this process; its connections search the
    store's schema first, which is created here."""
    try:
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool
    except ImportError:
        raise ConfigError(
            "`database_url` is PostgreSQL but psycopg is not installed: "
            "pip install -e '.[postgres]'"
        ) from None
    with _POOLS_LOCK:
        if (url, store) in _POOLS:
            return _POOLS[(url, store)]
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema(store)}")
        except psycopg.errors.UniqueViolation:
            pass  # another process created it at the same moment
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot reach `database_url` ({_redacted(url)}): {first}") from None
        pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            open=True,
            check=ConnectionPool.check_connection,  # a restarted server: reconnect, not fail
            kwargs={
                "autocommit": True,
                "prepare_threshold": 0,
                "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c search_path={schema(store)}",
            },
        )
        _POOLS[(url, store)] = pool
        return pool


def _setup_lock(url: str, store: Store) -> Any:
    """Schema set-up one process at a time, so replicas starting together do not run the
    same migration twice."""
    return _advisory_lock(_pool(url, store), f"mmsrarec-setup-{store}")


def _redacted(url: str) -> str:
    """`url` without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
