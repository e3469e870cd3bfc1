"""Serving recommendations to applications: the service behind the recommendation API, the
live data it stores (feedback, new items, model versions), keywords written in the
background, and retraining into a new model version that servers swap in.

- `service.py`: `RecommendationService` (recommend, similar items, feedback, new items, sync);
- `store.py`: `LiveStore`, the rows in the graph's database (SQLite or PostgreSQL);
- `catalog.py`: the served catalogue (prepared items + live items), item images;
- `backfill.py`: the critic loop on a worker thread;
- `retrain.py`: `retrain`, behind `mmsrarec train --from-store`.
"""

from mmsrarec.serving.retrain import retrain
from mmsrarec.serving.service import RecommendationService
from mmsrarec.serving.store import Feedback, LiveItem, LiveStore, ModelVersion, Written

__all__ = [
    "Feedback",
    "LiveItem",
    "LiveStore",
    "ModelVersion",
    "RecommendationService",
    "Written",
    "retrain",
]
