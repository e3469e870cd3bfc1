"""The served catalogue: the prepared dataset plus the items added while serving.

Live items are appended after the prepared items in their `seq` order, so an item's index
(what the models read) is the same in every process and in every retrained model's data.
Their text follows the JSONL catalogue's rule (`data.readers.catalog_item`). An image
arrives as bytes, must open with Pillow, and is stored once under its SHA-256 in the run
dir (`<run_dir>/live/images/`), which replicas share with the trained models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Container, Sequence
from pathlib import Path

from mmsrarec.data import Dataset, Item
from mmsrarec.data.readers import catalog_item
from mmsrarec.errors import DataError
from mmsrarec.serving.store import LiveItem
from mmsrarec.storage import atomic_write_bytes
from mmsrarec.types import Retriever, SimilarUser

IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp"}


def images_dir(run_dir: Path) -> Path:
    return run_dir / "live" / "images"


def save_image(data: bytes, run_dir: Path) -> str:
    """Store `data` (an image Pillow can open) and return its file name.

    Raises:
        DataError: Pillow cannot read it, or it is not PNG, JPEG, GIF or WebP.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # reads the whole file: a truncated or fake image fails here
            kind = image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"`image` is not an image Pillow can open ({exc})") from None
    if kind not in IMAGE_FORMATS:
        raise DataError(f"`image` is {kind}; send PNG, JPEG, GIF or WebP")
    name = f"{hashlib.sha256(data).hexdigest()[:32]}.{IMAGE_FORMATS[kind]}"
    path = images_dir(run_dir) / name
    if not path.exists():
        atomic_write_bytes(path, data)
    return name


def as_item(row: LiveItem, run_dir: Path) -> Item:
    image = str(images_dir(run_dir) / row.image) if row.image else None
    return catalog_item(row.item_id, row.title, row.description, image)


def extended(dataset: Dataset, items: Sequence[Item]) -> Dataset:
    """A new `Dataset` with `items` after the catalogue (everything else shared; the items
    have no interaction, so they are in no sequence)."""
    if not items:
        return dataset
    return dataclasses.replace(dataset, items=[*dataset.items, *items])  # cached ids rebuilt


class KnownItemsRetriever:
    """A `Retriever` that passes on only the history items of the prepared catalogue
    (`known`): items added while serving have no state in the similar-users index."""

    def __init__(self, inner: Retriever, known: Container[str]) -> None:
        self.inner, self.known = inner, known

    def similar_users(self, user_id: str, history: Sequence[str], k: int) -> list[SimilarUser]:
        known = [item_id for item_id in history if item_id in self.known]
        return self.inner.similar_users(user_id, known, k) if known else []
