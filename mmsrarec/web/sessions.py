"""Session tokens issued by the server, and the threads each session may read.

A token is `secrets.token_urlsafe(32)` (256 random bits). A thread is served only to the
session that created it; the map lives in memory, so a restart forgets sessions (their
conversations stay in the checkpoint store for `mmsrarec chat --thread`).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

COOKIE = "mmsrarec_session"
HEADER = "X-Session-Token"


class SessionStore:
    """Token -> thread ids, bounded: beyond `max_sessions` the least recently used is dropped."""

    def __init__(self, max_sessions: int = 10_000) -> None:
        self.max_sessions = max_sessions
        self._threads: OrderedDict[str, set[str]] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self) -> str:
        """A new session token."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._threads[token] = set()
            while len(self._threads) > self.max_sessions:
                self._threads.popitem(last=False)
        return token

    def known(self, token: str) -> bool:
        with self._lock:
            if token in self._threads:
                self._threads.move_to_end(token)
                return True
            return False

    def add_thread(self, token: str, thread_id: str) -> None:
        with self._lock:
            self._threads.setdefault(token, set()).add(thread_id)

    def owns(self, token: str, thread_id: str) -> bool:
        with self._lock:
            return thread_id in self._threads.get(token, set())

    def threads(self, token: str) -> list[str]:
        with self._lock:
            return sorted(self._threads.get(token, set()))
