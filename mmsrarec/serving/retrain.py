"""Retraining on the prepared data plus what arrived while serving, into a new version.

    version = retrain(settings, "mmsrarec")       # `mmsrarec train --from-store`

1. Snapshot: the prepared dataset, the live items with `seq <= items_seq` appended to the
   catalogue and the feedback with `seq <= feedback_seq` appended to each user's sequence,
   prepared as any dataset is (split, frozen negatives) into
   `<run_dir>/models/<dataset>/<scorer>/f<feedback_seq>-i<items_seq>/data/`. A user's live
   events keep their order after the prepared ones (a live timestamp earlier than the user's
   last prepared one is moved up to it), as the server reads histories.
2. Fit: the scorer, built by the same factory as a served one (`graph.factory.build_ranker`),
   with that folder as its run dir: every checkpoint lands inside it.
3. Publish: `version.json` written last in the folder, then a `model_versions` row; servers
   (`RecommendationService.sync`) load the newest row and swap it in.

A kill at any point leaves the served model alone (nothing is published before the end).
The next run finds the unfinished folder and resumes it: the same snapshot, and the
trainers' own checkpoints (SASRec and the LLM recommender resume from their last epoch).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mmsrarec.config import Settings
from mmsrarec.data import Dataset, load_dataset
from mmsrarec.data.prepare import prepare_raw, read_prepared
from mmsrarec.data.readers import RawData, collect
from mmsrarec.database import open_tables
from mmsrarec.graph.factory import build_ranker
from mmsrarec.serving.catalog import as_item
from mmsrarec.serving.store import LiveStore, ModelVersion
from mmsrarec.storage import atomic_write_json

logger = logging.getLogger(__name__)
DONE = "version.json"


def versions_dir(settings: Settings, scorer: str) -> Path:
    return settings.run_dir / "models" / settings.dataset / scorer


def retrain(
    settings: Settings, scorer: str, store: LiveStore | None = None, *, force: bool = False
) -> ModelVersion | None:
    """Fit `scorer` on the data plus the stored feedback and items, publish it, return it.

    Args:
        force: Retrain even when nothing arrived since the newest version.

    Returns:
        The published version, or None when nothing new arrived (and not `force`).
    """
    store = store or LiveStore(open_tables(settings, "recommend"))
    root = versions_dir(settings, scorer)
    folder = _unfinished(root)
    if folder is None:
        marks = store.last_seq("live_feedback"), store.last_seq("live_items")
        latest = store.latest_version(scorer)
        if not force and latest is not None and (latest.feedback_seq, latest.items_seq) == marks:
            logger.info("no feedback or item since %s: nothing to retrain", latest.label)
            return None
        if not force and latest is None and marks == (0, 0):
            logger.info("no feedback or item stored yet: nothing to retrain")
            return None
        folder = root / f"f{marks[0]}-i{marks[1]}"
        if (folder / DONE).exists():  # this very data was trained before (e.g. `force`)
            return _publish(store, scorer, folder)
    feedback_seq, items_seq = _marks(folder)
    trained = _snapshot(settings, store, folder, feedback_seq, items_seq)
    logger.info(
        "retraining %s on %d users, %d items (%s)",
        scorer,
        len(trained.users),
        trained.n_items,
        folder,
    )
    local = settings.model_copy(update={"run_dir": folder})
    build_ranker(local, trained, scorer, settings.seeds[0])  # trains, resuming if killed
    atomic_write_json(
        folder / DONE,
        {
            "scorer": scorer,
            "seed": settings.seeds[0],
            "feedback_seq": feedback_seq,
            "items_seq": items_seq,
        },
    )
    return _publish(store, scorer, folder)


def _publish(store: LiveStore, scorer: str, folder: Path) -> ModelVersion:
    feedback_seq, items_seq = _marks(folder)
    version = store.publish_version(scorer, str(folder.resolve()), feedback_seq, items_seq)
    logger.info("published %s %s (%s)", scorer, version.label, folder)
    return version


def _unfinished(root: Path) -> Path | None:
    """The newest folder a killed run left (snapshot begun, no `version.json`)."""
    if not root.is_dir():
        return None
    left = [path for path in root.iterdir() if path.is_dir() and not (path / DONE).exists()]
    return max(left, key=lambda path: _marks(path), default=None)


def _marks(folder: Path) -> tuple[int, int]:
    feedback, items = folder.name.split("-")
    return int(feedback[1:]), int(items[1:])


def _snapshot(
    settings: Settings, store: LiveStore, folder: Path, feedback_seq: int, items_seq: int
) -> Dataset:
    """The training data of `folder`, prepared once (a resumed run reuses it)."""
    target = folder / "data" / settings.dataset
    if (target / "manifest.json").exists():
        return load_dataset(target)
    raw = read_prepared(settings.dataset_dir)
    items = [as_item(row, settings.run_dir) for row in store.items_after(0) if row.seq <= items_seq]
    rows = list(raw.interactions.rows(raw.items))
    last: dict[str, float] = {}
    for user, _, timestamp in rows:
        last[user] = max(timestamp, last.get(user, timestamp))
    live = [
        (
            event.user_id,
            event.item_id,
            max(event.timestamp, last.get(event.user_id, event.timestamp)),
        )
        for event in sorted(
            store.feedback(feedback_seq), key=lambda event: (event.timestamp, event.seq)
        )
    ]
    catalog = [*raw.items, *items]
    snapshot = RawData(
        raw.name,
        catalog,
        collect([*rows, *live], catalog, settings.dataset_dir),
        json.dumps({"prepared": raw.source, "feedback_seq": feedback_seq, "items_seq": items_seq}),
    )
    prepared, _ = prepare_raw(snapshot, target)
    return load_dataset(prepared)
