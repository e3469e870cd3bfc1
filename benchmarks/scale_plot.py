"""The cost curves of `benchmarks/scale.py`: log-log time and peak memory against catalogue
size (users fixed) and against users (items fixed), each step's fitted slope in the legend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIXED_USERS = 10_000
FIXED_ITEMS = 100_000  # the largest catalogue: its users run from 10^3 to 10^6


def cost(row: dict) -> float | None:
    """Seconds of the step: a projected epoch where only part of one ran."""
    if row["status"] == "ok":
        return row["seconds"]
    return row.get("epoch_seconds_projected") if row["status"].startswith("partial") else None


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y against log x (None under 2 points)."""
    if len(xs) < 2:
        return None
    return float(np.polyfit(np.log10(xs), np.log10(ys), 1)[0])


def series(rows: list[dict], step: str, axis: str, fixed: int, value) -> tuple[list, list]:
    other = "users" if axis == "items" else "items"
    points = sorted((r[axis], value(r)) for r in rows
                    if r["step"] == step and r[other] == fixed and value(r))  # fmt: skip
    return [p[0] for p in points], [p[1] for p in points]


def plot(rows: list[dict], path: Path) -> None:
    steps = list(dict.fromkeys(r["step"] for r in rows))
    figure, axes = plt.subplots(2, 2, figsize=(13, 10))
    panels = [("items", FIXED_USERS, cost, "seconds (score: p50 per user)"),
              ("users", FIXED_ITEMS, cost, "seconds (score: p50 per user)"),
              ("items", FIXED_USERS, lambda r: r.get("peak_rss_gb"), "peak RSS, GB"),
              ("users", FIXED_ITEMS, lambda r: r.get("peak_rss_gb"), "peak RSS, GB")]  # fmt: skip
    for ax, (axis, fixed, value, label) in zip(axes.flat, panels, strict=True):
        for step in steps:
            xs, ys = series(rows, step, axis, fixed, value)
            if not xs:
                continue
            fitted = slope(xs, ys)
            name = f"{step} (slope {fitted:.2f})" if fitted is not None else step
            ax.plot(xs, ys, marker="o", label=name)
        other = "users" if axis == "items" else "items"
        ax.set(xscale="log", yscale="log", xlabel=axis, ylabel=label,
               title=f"{label.split(' (')[0]} vs {axis}, {other} = {fixed:,}")  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle("SYNTHETIC data (cost measurements only), one thread per step, shared "
                    "2-core machine")  # fmt: skip
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def table(rows: list[dict]) -> str:
    """Markdown: one line per step and point (seconds, peak RSS, status, the step's extras)."""
    lines = ["| step | items | users | seconds | peak RSS GB | status | notes |",
             "|---|---:|---:|---:|---:|---|---|"]  # fmt: skip
    for row in rows:
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.4g}"
        rss = "" if row.get("peak_rss_gb") is None else f"{row['peak_rss_gb']:.2f}"
        lines.append(f"| {row['step']} | {row['items']:,} | {row['users']:,} | {seconds} | "
                     f"{rss} | {row['status']} | {notes(row)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def notes(row: dict) -> str:
    keys = {"extra_rss_gb": "+{:.2f} GB in the step", "sequences_per_s": "{:.0f} seq/s",
            "epoch_seconds_projected": "epoch {:.0f} s", "loss": "loss {}",
            "recall_at_100": "recall@100 {:.3f}", "ann_99_ms": "ANN p99 {:.1f} ms",
            "exact_50_ms": "exact p50 {:.1f} ms", "query_p50_ms": "query p50 {:.1f} ms",
            "interactions": "{:,} interactions", "nnz": "{:,} neighbours",
            "projected_from_steps": "projected from {} steps",
            "load_average": "load {}"}  # fmt: skip
    parts = []
    for key, text in keys.items():
        value = row.get(key)
        if value is not None and not (key == "epoch_seconds_projected" and row["status"] == "ok"):
            parts.append(text.format(value[0] if key == "load_average" else value))
    return ", ".join(parts)
