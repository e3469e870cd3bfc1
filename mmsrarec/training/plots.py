"""Training curves as PNG files, read from a trainer's `state.log_history` (written atomically)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmsrarec.storage import atomic_write_bytes, atomic_write_jsonl

# GRPO: the total drives the advantages; the components are logged by `r_total` itself.
REWARD_KEYS = ("rewards/r_total/mean", "norm/info", "norm/recon", "norm/len", "norm/collab")
LOSS_KEYS = ("loss", "eval_loss")


def series(log_history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` in the log history (rows without it are skipped)."""
    rows = [(int(row["step"]), float(row[key])) for row in log_history if key in row]
    return [s for s, _ in rows], [v for _, v in rows]


def plot_curves(
    log_history: Sequence[Mapping[str, Any]], keys: Sequence[str], path: Path, title: str
) -> Path:
    """One panel per key that has values (a shared step axis), saved as a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    present = [key for key in keys if series(log_history, key)[0]]
    fig, axes = plt.subplots(len(present) or 1, 1, figsize=(6, 2.2 * max(len(present), 1)),
                             sharex=True, squeeze=False)  # fmt: skip
    for ax, key in zip(axes[:, 0], present, strict=False):
        steps, values = series(log_history, key)
        ax.plot(steps, values, marker="o", markersize=2)
        ax.set_ylabel(key.removeprefix("rewards/").removesuffix("/mean"), fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def write_log_history(log_history: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """The log history as JSON lines (one logged step per line), written atomically."""
    atomic_write_jsonl(path, (dict(row) for row in log_history))
    return path
