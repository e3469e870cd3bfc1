"""The keyword cache: final keywords per item in SQLite, safe against a kill at any moment.

Key: `(item_id, sha256(item text + image path), model name, prompt version)`, so editing an
item, switching models or changing the prompts (see `prompts.PROMPT_VERSION`) never serves
stale keywords. Each write is one committed transaction in WAL mode: a process killed with
SIGKILL leaves every row it committed and none half-written. `synchronous=NORMAL` survives
a crashed or killed process; only a power cut may lose the last commits (never corrupt).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from mmsrarec.config import Settings
from mmsrarec.data import Item
from mmsrarec.errors import DataError
from mmsrarec.storage import sha256_text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keywords (
    item_id TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    keywords TEXT NOT NULL,  -- JSON list of strings
    reward REAL,             -- the critic's weighted total, NULL when not judged
    created_at REAL NOT NULL,
    PRIMARY KEY (item_id, content_sha256, model, prompt_version)
)
"""
_CHUNK = 500  # item ids per SELECT (SQLite caps bound parameters)


def content_hash(item: Item) -> str:
    """sha256 of what the summarizer reads: the item text and its image path."""
    return sha256_text(f"{item.text}\x00{item.image or ''}")


class KeywordCache:
    """Implements `KeywordStore` for one summarizer model and prompt version.

    Safe to share between threads (one connection behind a lock); several processes may
    open the same file (SQLite serialises their writes).

    Args:
        path: The SQLite file; created with its folder if missing.
        model_name: The summarizer's `name`.
        prompt_version: `prompts.PROMPT_VERSION` for the LLM summarizer.

    Raises:
        DataError: `path` exists but is not a keyword cache.
    """

    def __init__(self, path: Path, model_name: str, prompt_version: str) -> None:
        self.path = Path(path)
        self.model_name = model_name
        self.prompt_version = prompt_version
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"keyword cache `{self.path}` cannot be opened ({exc}); delete the file to "
                "start an empty cache"
            ) from exc

    def get_many(self, items: Sequence[Item]) -> dict[str, list[str]]:
        """Stored keywords for the items that have them (misses are left out)."""
        return {item_id: keywords for item_id, (keywords, _) in self.get_rows(items).items()}

    def get_rows(self, items: Sequence[Item]) -> dict[str, tuple[list[str], float | None]]:
        """Stored `(keywords, reward)` for the items that have them."""
        wanted = {item.item_id: content_hash(item) for item in items}
        found: dict[str, tuple[list[str], float | None]] = {}
        ids = list(wanted)
        with self._lock:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                rows = self._db.execute(
                    "SELECT item_id, content_sha256, keywords, reward FROM keywords "
                    f"WHERE model = ? AND prompt_version = ? AND item_id IN "
                    f"({','.join('?' * len(chunk))})",
                    [self.model_name, self.prompt_version, *chunk],
                ).fetchall()
                for item_id, sha, keywords, reward in rows:
                    if wanted[item_id] == sha:
                        found[item_id] = (json.loads(keywords), reward)
        return found

    def put(self, item: Item, keywords: list[str], reward: float | None) -> None:
        """Store the final keywords of one item (one committed transaction)."""
        self.put_many([(item, keywords, reward)])

    def put_many(self, rows: Iterable[tuple[Item, list[str], float | None]]) -> None:
        """Store several items in one transaction: all of them are committed, or none."""
        now = time.time()
        values = [
            (
                item.item_id,
                content_hash(item),
                self.model_name,
                self.prompt_version,
                json.dumps(list(keywords), ensure_ascii=False),
                None if reward is None else float(reward),
                now,
            )
            for item, keywords, reward in rows
        ]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO keywords VALUES (?, ?, ?, ?, ?, ?, ?)", values
            )

    def __len__(self) -> int:
        """Rows of this model and prompt version (any item content)."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM keywords WHERE model = ? AND prompt_version = ?",
                (self.model_name, self.prompt_version),
            ).fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> KeywordCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def keyword_cache_path(settings: Settings) -> Path:
    """The one keyword store of a cache dir (graph, `mmsrarec summarize`, recommenders)."""
    return settings.cache_dir / "keywords.sqlite"
