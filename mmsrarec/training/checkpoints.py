"""Checkpoints that are never resumed half-written.

Transformers writes `checkpoint-N/` file by file, and `get_last_checkpoint` takes the newest
folder whatever it holds: a kill during a save leaves one that the next run would load and
fail on (or worse, load partly). `completion_marker()` writes `complete.json` (each file's
size) atomically once the trainer has finished saving a checkpoint; `last_complete_checkpoint`
resumes only from a folder whose marker matches its files, and moves unfinished ones aside.

`save_torch` writes a torch checkpoint through a temporary file and a rename; every weights or
checkpoint file is read back through `load_verified` (its sha256 checked, tensors and plain
values only). A training loop's resume file (`save_resumable`) records its own sha256 beside
it, so a file from a kill between the two writes is not resumed from.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from mmsrarec.errors import NotPreparedError
from mmsrarec.storage import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file

logger = logging.getLogger(__name__)

MARKER = "complete.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def mark_complete(folder: Path) -> None:
    """Record `folder`'s files and sizes in its marker (written last, atomically)."""
    files = {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MARKER
    }
    atomic_write_json(folder / MARKER, {"files": files})


def is_complete(folder: Path) -> bool:
    """Whether `folder` has a marker and every file it lists, at its recorded size."""
    try:
        files = json.loads((folder / MARKER).read_text(encoding="utf-8"))["files"]
        return bool(files) and all(
            (folder / name).stat().st_size == size for name, size in files.items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest complete `checkpoint-N` under `output_dir`, or None. Newer unfinished
    folders are renamed `unfinished-checkpoint-N-<time>` (kept for inspection, never
    resumed, ignored by the trainer's rotation)."""
    found = sorted(
        (
            (int(match.group(1)), path)
            for path in output_dir.glob("checkpoint-*")
            if path.is_dir() and (match := _CHECKPOINT.fullmatch(path.name))
        ),
        reverse=True,
    )
    for _, folder in found:
        if is_complete(folder):
            return str(folder)
        aside = folder.with_name(f"unfinished-{folder.name}-{time.time_ns()}")
        folder.rename(aside)
        logger.warning("%s was not completely written (killed while saving): moved to %s",
                       folder, aside)  # fmt: skip
    return None


def completion_marker() -> Any:
    """A `TrainerCallback` that marks each checkpoint complete after the trainer saved it."""
    from transformers import TrainerCallback

    class CompletionMarker(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # after `_save_checkpoint` returns
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                mark_complete(folder)

    return CompletionMarker()


def save_torch(path: Path, obj: Any) -> None:
    """`torch.save(obj)` to `path` atomically: a kill leaves the previous file or this one."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def save_resumable(path: Path, state: dict[str, Any]) -> None:
    """A training loop's state after a finished epoch: the file, then its sha256 beside it."""
    save_torch(path, state)
    atomic_write_text(_digest_path(path), sha256_file(path) + "\n")


def load_resumable(path: Path | None, device: Any) -> dict[str, Any] | None:
    """The state saved by `save_resumable`, or None when there is none or it does not match
    its recorded sha256 (a fresh start, never a partial resume)."""
    if path is None or not path.exists():
        return None
    digest = _digest_path(path)
    recorded = digest.read_text(encoding="utf-8").strip() if digest.exists() else None
    try:
        return load_verified(path, recorded, device)
    except NotPreparedError:
        logger.warning("%s does not match its recorded sha256: training starts over", path)
        return None


class TrainedFolder:
    """A trained model's folder, written in one order so that a kill never leaves a folder
    that looks complete: `training.json` (the run's key) while training, `checkpoint.pt` after
    each finished epoch (resume), then `weights.pt`, `meta.json` (with the weights' sha256)
    and the marker, last. The marker is `meta.json` itself (its `key_field` holds the key) or
    a file of its own holding the key.

    Args:
        path: the folder.
        marker: the file whose presence, holding this run's key, marks the folder complete.
        key_field: where the marker keeps the key (`None`: the marker is the key itself).
    """

    def __init__(self, path: Path, marker: str = "meta.json", key_field: str | None = None):
        self.path, self.marker, self.key_field = path, marker, key_field

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    def saved_key(self) -> Any:
        """The key of the completely saved model, or None."""
        marker = _read_json(self.path / self.marker)
        if marker is None or self.key_field is None:
            return marker
        return marker.get(self.key_field)

    def start(self, key: Any) -> Path:
        """Before training: drop another run's resume file, record this run's key; returns the
        resume file to train with."""
        if self.checkpoint.exists() and _read_json(self.path / "training.json") != key:
            remove_resumable(self.checkpoint)  # another configuration's progress: never resume
        atomic_write_json(self.path / "training.json", key)
        return self.checkpoint

    def publish(self, weights: dict[str, Any], meta: dict[str, Any], marker: Any = None) -> dict:
        """Save the weights, then `meta.json` (with `weights_sha256`), then the marker (when it
        is a file of its own); remove the resume file. Returns the meta as written."""
        save_torch(self.path / "weights.pt", weights)
        meta = {**meta, "weights_sha256": sha256_file(self.path / "weights.pt")}
        atomic_write_json(self.path / "meta.json", meta)
        if self.marker != "meta.json":
            atomic_write_json(self.path / self.marker, marker)
        remove_resumable(self.checkpoint)
        return meta

    def load(self, device: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(weights, meta) of the saved model, the weights checked against the meta."""
        meta = _read_json(self.path / "meta.json") or {}
        return load_verified(self.path / "weights.pt", meta.get("weights_sha256"), device), meta


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def remove_resumable(path: Path) -> None:
    """Remove a resume file and its sha256 (training finished, or it is another run's)."""
    path.unlink(missing_ok=True)
    _digest_path(path).unlink(missing_ok=True)


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def load_verified(path: Path, sha256: str | None, device: Any) -> Any:
    """`torch.load` of weights saved with `save_torch` whose sha256 was recorded.

    Raises:
        NotPreparedError: the file is missing or its sha256 is not `sha256`.
    """
    import torch

    if not path.exists() or sha256_file(path) != sha256:
        raise NotPreparedError(f"`{path}` is missing or damaged: delete `{path.parent}`")
    return torch.load(path, map_location=device, weights_only=True)
