"""What the accuracy benchmarks share: committed rows (one JSON per method and seed), the
rankings exports, and per-user metrics for paired intervals."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np


def load_rows(folder: Path) -> dict[str, list[dict]]:
    """Method -> its committed rows (`<method>.seed<k>.json`), in seed order."""
    rows: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.json")):
        row = json.loads(path.read_text(encoding="utf-8"))
        rows.setdefault(row["method"], []).append(row)
    return rows


def per_user(rows: list[dict], protocol: str, users: list[str]) -> np.ndarray:
    """Per-user NDCG (@5 on the sampled candidates, @10 otherwise), averaged over the rows'
    seeds, in `users` order: [len(users)]."""
    from mmsrarec.metrics import ndcg

    k = 5 if protocol == "sampled" else 10
    values = []
    for row in rows:
        order = row[protocol].get("users", row.get("users"))
        ranks = dict(zip(order, row[protocol]["ranks"], strict=True))
        values.append([ndcg(np.array([ranks[u]]), k) for u in users])
    return np.mean(values, axis=0)


def write_export(folder: Path, method: str, result, dataset) -> None:
    """`<folder>/<protocol>.<method>.jsonl.gz`: the rankings export, byte-identical for equal
    rankings (gzip without a timestamp)."""
    from mmsrarec.evaluation.harness import write_rankings

    plain = folder / f"{result.protocol.value}.{method}.jsonl"
    write_rankings(plain, result, dataset)
    with plain.open("rb") as src, gzip.GzipFile(f"{plain}.gz", "wb", mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    plain.unlink()
