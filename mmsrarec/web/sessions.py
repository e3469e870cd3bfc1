"""Session tokens issued by the server, and the threads each session may read.

A token is `secrets.token_urlsafe(32)` (256 random bits). A thread is served only to the
session that created it. The map is kept in the chat's database (`mmsrarec.database`: the
run dir's `chat.sqlite`, or PostgreSQL with `database_url`), so sessions survive a restart
and every replica on the same database honours them. Only a SHA-256 of each token is
stored: a copy of the database does not hand out live sessions.

A session unused for `max_idle_s` is forgotten (with its ownership; the conversations stay
in the checkpoint store). A session with a request in flight in this process is never
evicted; one busy on another replica was touched when its request began.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mmsrarec.config import Settings
from mmsrarec.database import Tables, open_tables
from mmsrarec.storage import sha256_text

COOKIE = "mmsrarec_session"
HEADER = "X-Session-Token"
EVICT_EVERY_S = 60.0

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS web_sessions "
    "(token_sha256 TEXT PRIMARY KEY, last_used DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS web_session_threads "
    "(thread_id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS web_session_threads_by_token ON web_session_threads (token_sha256)",
    "CREATE INDEX IF NOT EXISTS web_sessions_by_age ON web_sessions (last_used)",
]


class SessionStore:
    """Token -> thread ids in `tables` (default: an in-memory SQLite, gone at exit).

    Args:
        tables: The database (see `SessionStore.from_settings`).
        max_idle_s: Sessions unused this long are evicted.
        clock: Seconds since the epoch (tests pass a fake one).
    """

    def __init__(
        self,
        tables: Tables | None = None,
        max_idle_s: float = Settings.model_fields["session_max_idle_hours"].default * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tables = tables or Tables.sqlite(None)
        self.tables.setup(SCHEMA)
        self.max_idle_s = max_idle_s
        self.clock = clock
        self._in_use: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._last_eviction = float("-inf")

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionStore:
        """Sessions in the chat store's database, idle limit from the settings."""
        return cls(open_tables(settings, "chat"), settings.session_max_idle_hours * 3600)

    def issue(self) -> str:
        """A new session token (and, at most once a minute, an eviction of idle ones)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        self.tables.run(
            "INSERT INTO web_sessions (token_sha256, last_used) VALUES (?, ?)",
            (_key(token), now),
        )
        if now - self._last_eviction >= EVICT_EVERY_S:
            self._last_eviction = now
            self.evict_idle()
        return token

    def known(self, token: str) -> bool:
        """Whether `token` is a live session; marks it used now."""
        rows = self.tables.run(
            "UPDATE web_sessions SET last_used = ? WHERE token_sha256 = ? RETURNING token_sha256",
            (self.clock(), _key(token)),
        )
        return bool(rows)

    @contextmanager
    def using(self, token: str) -> Iterator[None]:
        """Marks `token` in use for the block: `evict_idle` leaves it alone."""
        with self._lock:
            self._in_use[_key(token)] += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_use[_key(token)] -= 1
                if not self._in_use[_key(token)]:
                    del self._in_use[_key(token)]

    def add_thread(self, token: str, thread_id: str) -> None:
        self.tables.run(
            "INSERT INTO web_session_threads (thread_id, token_sha256) VALUES (?, ?) "
            "ON CONFLICT (thread_id) DO NOTHING",
            (thread_id, _key(token)),
        )

    def owns(self, token: str, thread_id: str) -> bool:
        return bool(
            self.tables.run(
                "SELECT 1 FROM web_session_threads WHERE thread_id = ? AND token_sha256 = ?",
                (thread_id, _key(token)),
            )
        )

    def threads(self, token: str) -> list[str]:
        rows = self.tables.run(
            "SELECT thread_id FROM web_session_threads WHERE token_sha256 = ? ORDER BY thread_id",
            (_key(token),),
        )
        return [row[0] for row in rows]

    def evict_idle(self) -> int:
        """Forget sessions unused for `max_idle_s` (never one in use here). Returns how many."""
        cutoff = self.clock() - self.max_idle_s
        with self._lock:
            busy = sorted(self._in_use)
        keep = f" AND token_sha256 NOT IN ({', '.join('?' * len(busy))})" if busy else ""
        gone = self.tables.run(
            f"DELETE FROM web_sessions WHERE last_used < ?{keep} RETURNING 1", (cutoff, *busy)
        )
        if gone:  # ownership rows of sessions no longer there (this run's or an earlier one's)
            self.tables.run(
                "DELETE FROM web_session_threads WHERE token_sha256 NOT IN "
                "(SELECT token_sha256 FROM web_sessions)"
            )
        return len(gone)


def _key(token: str) -> str:
    return sha256_text(token)
