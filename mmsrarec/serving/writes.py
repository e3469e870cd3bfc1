"""Writes of live data, checked the same way from the API, the CLI and Python.

    writer = LiveWriter.from_settings(settings)     # no model loads: a write is a row
    writer.add_feedback("196", "302", time.time(), kind="purchase", idempotency_key="k1")
    writer.add_item("Green tea", "Sencha from Shizuoka.", image=png_bytes)

A running server reads feedback at each request and takes in new items within
`server.sync_every_s` (at once when it wrote them itself).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

from mmsrarec.config import Settings
from mmsrarec.data import Dataset, load_dataset
from mmsrarec.database import open_tables
from mmsrarec.errors import DataError
from mmsrarec.serving.catalog import save_image
from mmsrarec.serving.store import ItemExists, LiveStore, Written

MAX_ID_CHARS = 200
DEFAULT_KIND = "interaction"


class UnknownItem(DataError):
    """The served catalogue has no item with this id."""


class LiveWriter:
    """Checked writes to `store` over the catalogue `prepared` + the stored live items.

    Args:
        settings: Where item images go (`run_dir`).
        prepared: The prepared dataset.
        store: The live rows.
    """

    def __init__(self, settings: Settings, prepared: Dataset, store: LiveStore) -> None:
        self.settings, self.prepared, self.store = settings, prepared, store

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveWriter:
        store = LiveStore(open_tables(settings, "recommend"))
        return cls(settings, load_dataset(settings.dataset_dir), store)

    @staticmethod
    def exists(settings: Settings) -> bool:
        """Whether live data may be stored yet (a read need not create the SQLite file)."""
        return settings.database_url is not None or settings.graph_db.exists()

    def check_items(self, item_ids: Sequence[str]) -> None:
        """Raise `UnknownItem` for an id neither the prepared data nor the store has."""
        for item_id in item_ids:
            if item_id not in self.prepared.item_index and not self.store.has_item(item_id):
                raise UnknownItem(f"unknown item id `{item_id[:80]}` in the catalogue")

    def add_feedback(
        self,
        user_id: str,
        item_id: str,
        timestamp: float,
        kind: str = DEFAULT_KIND,
        idempotency_key: str | None = None,
    ) -> Written:
        """Store one interaction (see `LiveStore.add_feedback`).

        Raises:
            DataError: a blank or too long id, an unknown item, a timestamp that is not a
                finite number, an idempotency key used for another request.
        """
        check_text("user_id", user_id)
        check_text("kind", kind)
        number = isinstance(timestamp, int | float) and not isinstance(timestamp, bool)
        if not number or not math.isfinite(timestamp):
            raise DataError(f"`timestamp` {timestamp!r} is not a finite number of seconds")
        self.check_items([item_id])
        return self.store.add_feedback(user_id, item_id, float(timestamp), kind, idempotency_key)

    def add_item(
        self,
        title: str,
        description: str = "",
        image: bytes | None = None,
        item_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Written:
        """Store a new item (see `LiveStore.add_item`).

        Args:
            item_id: Your id for it; default: a new one (`item-<12 hex digits>`).

        Raises:
            DataError: a blank title, an image Pillow cannot open, an id in use
                (`ItemExists`), an idempotency key used for another request.
        """
        if not title.strip():
            raise DataError("`title` is blank: every item needs one")
        if item_id is not None:
            check_text("item_id", item_id)
            if item_id in self.prepared.item_index:
                raise ItemExists(f"item `{item_id}` already exists: give another `item_id`")
        name = save_image(image, self.settings.run_dir) if image is not None else None
        # what identifies a retry: the id you gave (not one made up here) and the content
        request = {"item_id": item_id, "title": title, "description": description, "image": name}
        new_id = item_id or f"item-{secrets.token_hex(6)}"
        return self.store.add_item(new_id, title.strip(), description, name, idempotency_key,
                                   request)  # fmt: skip


def check_text(name: str, value: str) -> None:
    """Raise `DataError` for a blank value or one over `MAX_ID_CHARS`."""
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"`{name}` is blank")
    if len(value) > MAX_ID_CHARS:
        raise DataError(f"`{name}` has {len(value)} characters; at most {MAX_ID_CHARS}")
