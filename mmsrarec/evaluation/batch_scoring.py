"""Batch scoring: each user's next items after their whole history, for `mmsrarec score`.

Output rows have the rankings export's shape without a target (nothing is held out):
`{"user_id": raw id, "candidates": [raw item ids, best first], "scores": [floats]}`. The
catalog is ranked minus the user's own interactions, the `top` best items are kept
(`Recommender.top_k`: an approximate-nearest-neighbour recommender answers from its index). The
file is gzipped JSONL with a fixed gzip header, so equal rankings give equal bytes.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mmsrarec.data import Dataset
from mmsrarec.errors import DataError
from mmsrarec.evaluation.protocols import BATCH_SIZE, EXPORT_TOP
from mmsrarec.recommenders.base import Query, Recommender
from mmsrarec.storage import atomic_write_bytes


def score_batch(
    recommender: Recommender, dataset: Dataset, users: Sequence[str], top: int = EXPORT_TOP
) -> list[dict[str, Any]]:
    """One `top_k` call for `users`; their top items with scores, in `users` order."""
    queries = [Query(user, tuple(dataset.sequence(user))) for user in users]
    return [
        {
            "user_id": query.user_id,
            "candidates": [dataset.item(int(index)).item_id for index in best.items],
            "scores": best.scores.tolist(),
        }
        for query, best in zip(queries, recommender.top_k(queries, top), strict=True)
    ]


def user_batches(users: Sequence[str], batch_size: int = BATCH_SIZE) -> list[list[str]]:
    """Consecutive batches: the unit of work locally and on Ray (same batches, same scores)."""
    return [list(users[start : start + batch_size]) for start in range(0, len(users), batch_size)]


def score_users(
    recommender: Recommender,
    dataset: Dataset,
    users: Sequence[str],
    top: int = EXPORT_TOP,
    batch_size: int = BATCH_SIZE,
) -> list[dict[str, Any]]:
    """The local loop: every batch in turn."""
    return [
        row
        for batch in user_batches(users, batch_size)
        for row in score_batch(recommender, dataset, batch, top)
    ]


def read_users(spec: str, dataset: Dataset) -> list[str]:
    """`all` (every user of the dataset) or a file of raw user ids, one a line, in file order.

    Blank lines are skipped and a repeated id is scored once.

    Raises:
        DataError: the file is missing or unreadable, holds no id, or names an unknown user.
    """
    if spec == "all":
        return list(dataset.users)
    path = Path(spec)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"`--users {spec}`: cannot read it ({exc.__class__.__name__})") from None
    users = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    if not users:
        raise DataError(f"`--users {spec}` holds no user id (one raw id a line, or `all`)")
    unknown = [user for user in users if user not in dataset.sequences]
    if unknown:
        raise DataError(
            f"`--users {spec}`: {len(unknown)} unknown user id(s) in dataset "
            f"`{dataset.name}`, first `{unknown[0]}`"
        )
    return users


def write_rows_gz(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write JSONL rows gzipped, atomically; mtime 0 keeps the bytes reproducible."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write_bytes(path, gzip.compress(text.encode("utf-8"), mtime=0))
