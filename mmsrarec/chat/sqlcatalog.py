"""The hard-condition filter: the catalog's metadata in SQLite, queried by genre and year.

    db = CatalogDB.build(dataset)           # in memory, a few ms for ML-100K
    db.query(Conditions(genres=("Comedy", "Romance"), year_min=1990, year_max=1999))

Metadata comes from the item text as ML-100K writes it: the year from the title's "(1995)",
genres from "Genres: Comedy, Romance." (items without either simply have none). Results are
ordered by popularity (training interactions), most popular first.

`relax` is the one relaxation rule: when too few items pass, drop one hard condition and say
which, in this order: a genre read from a mood ("spooky → horror"), the liked titles' genres,
the year range, then the genres asked by name, the last one asked first. Avoided genres and
avoided years are never relaxed: the user said no.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter

from pydantic import BaseModel, ConfigDict

from mmsrarec.chat.parse import year_of
from mmsrarec.data import Dataset, Item

GENRES = re.compile(r"Genres:\s*([^.]+)\.")
SCHEMA = """
CREATE TABLE items (item_id TEXT PRIMARY KEY, position INTEGER, title TEXT, year INTEGER,
                    popularity INTEGER);
CREATE TABLE item_genres (item_id TEXT, genre TEXT, PRIMARY KEY (item_id, genre));
CREATE INDEX genre_items ON item_genres (genre);
"""


def genres_of(item: Item) -> list[str]:
    """The genres listed in `item.text` ("unknown" is not a genre)."""
    found = GENRES.search(item.text)
    names = [g.strip() for g in found.group(1).split(",")] if found else []
    return [g for g in names if g and g.lower() != "unknown"]


class Conditions(BaseModel):
    """Hard conditions: every wanted genre, none of the avoided ones, year inside the range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    genres: tuple[str, ...] = ()  # asked by name: all required
    mood_genres: tuple[tuple[str, str], ...] = ()  # (word, genre) read from moods: required
    any_genres: tuple[str, ...] = ()  # a liked title's genres: at least one
    avoid_genres: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    avoid_years: tuple[tuple[int, int], ...] = ()

    def required(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.genres, *(g for _, g in self.mood_genres)]))

    def is_empty(self) -> bool:
        return (
            not (self.required() or self.any_genres or self.avoid_genres or self.avoid_years)
            and self.year_min is self.year_max is None
        )


def relax(conditions: Conditions) -> tuple[Conditions, str] | None:
    """`conditions` with one condition dropped (the module docstring's order), and what was
    dropped; None when nothing can be."""
    if conditions.mood_genres:
        word, genre = conditions.mood_genres[-1]
        dropped = conditions.model_copy(update={"mood_genres": conditions.mood_genres[:-1]})
        return dropped, f"genre {genre} (from '{word}')"
    if conditions.any_genres:
        dropped = conditions.model_copy(update={"any_genres": ()})
        return dropped, "the liked titles' genres"
    if conditions.year_min is not None or conditions.year_max is not None:
        low = conditions.year_min if conditions.year_min is not None else "…"
        high = conditions.year_max if conditions.year_max is not None else "…"
        dropped = conditions.model_copy(update={"year_min": None, "year_max": None})
        return dropped, f"years {low}–{high}"
    if conditions.genres:
        dropped = conditions.model_copy(update={"genres": conditions.genres[:-1]})
        return dropped, f"genre {conditions.genres[-1]}"
    return None


class CatalogDB:
    """Item metadata in an in-memory SQLite database (one connection; the chat service
    serialises runs, so no two threads use it at once)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        rows = connection.execute("SELECT DISTINCT genre FROM item_genres ORDER BY genre")
        self.genres = frozenset(row[0] for row in rows)
        span = connection.execute("SELECT MIN(year), MAX(year) FROM items").fetchone()
        self.span: tuple[int, int] = (span[0] or 1900, span[1] or 2030)

    @classmethod
    def build(cls, dataset: Dataset) -> CatalogDB:
        popularity = Counter(
            index for user in dataset.sequences for index in dataset.train_sequence(user)
        )
        connection = sqlite3.connect(":memory:", check_same_thread=False)
        connection.executescript(SCHEMA)
        connection.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
            [
                (item.item_id, n, item.title, _year(item), popularity[n])
                for n, item in enumerate(dataset.items, start=1)
            ],
        )
        connection.executemany(
            "INSERT OR IGNORE INTO item_genres VALUES (?, ?)",
            [(item.item_id, genre) for item in dataset.items for genre in genres_of(item)],
        )
        connection.commit()
        return cls(connection)

    def query(self, conditions: Conditions) -> tuple[list[str], str]:
        """Item ids that meet `conditions`, most popular first, and the SQL that ran."""
        where, params = ["1 = 1"], []
        if conditions.year_min is not None:
            where.append("year >= ?")
            params.append(conditions.year_min)
        if conditions.year_max is not None:
            where.append("year <= ?")
            params.append(conditions.year_max)
        for low, high in conditions.avoid_years:  # an item without a year is left out
            where.append("year NOT BETWEEN ? AND ?")
            params += [low, high]
        required = conditions.required()
        if required:
            marks = ", ".join("?" * len(required))
            where.append(
                f"item_id IN (SELECT item_id FROM item_genres WHERE genre IN ({marks}) "
                "GROUP BY item_id HAVING COUNT(DISTINCT genre) = ?)"
            )
            params += [*required, len(required)]
        if conditions.any_genres:
            marks = ", ".join("?" * len(conditions.any_genres))
            where.append(f"item_id IN (SELECT item_id FROM item_genres WHERE genre IN ({marks}))")
            params += list(conditions.any_genres)
        if conditions.avoid_genres:
            marks = ", ".join("?" * len(conditions.avoid_genres))
            where.append(
                f"item_id NOT IN (SELECT item_id FROM item_genres WHERE genre IN ({marks}))"
            )
            params += list(conditions.avoid_genres)
        sql = (
            f"SELECT item_id FROM items WHERE {' AND '.join(where)} "
            "ORDER BY popularity DESC, position"
        )
        rows = self.connection.execute(sql, params).fetchall()
        return [row[0] for row in rows], sql

    def facts(self, item_id: str) -> tuple[int | None, list[str], int]:
        """Year, genres and popularity of one item."""
        year, popularity = self.connection.execute(
            "SELECT year, popularity FROM items WHERE item_id = ?", (item_id,)
        ).fetchone()
        genres = self.connection.execute(
            "SELECT genre FROM item_genres WHERE item_id = ? ORDER BY genre", (item_id,)
        ).fetchall()
        return year, [g[0] for g in genres], popularity


def _year(item: Item) -> int | None:
    year = year_of(item.title)
    return int(year) if year else None
