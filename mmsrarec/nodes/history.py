"""First node: look the user up and fix what the run works on (history and candidates)."""

from __future__ import annotations

import random
from typing import Any

from langgraph.runtime import Runtime

from mmsrarec.data import Dataset
from mmsrarec.errors import DataError
from mmsrarec.nodes.context import GraphContext
from mmsrarec.nodes.state import RecommendationState
from mmsrarec.trace import traced

MAX_CANDIDATES = 5000
MAX_HISTORY = 10_000  # given histories longer than this are refused, not silently cut
TRACED = 100  # candidates the trace names


def load_user(state: RecommendationState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """History = the given item ids, else the user's visible history at the configured stage;
    candidates = the given ids, else the user's frozen sampled candidates. Frozen candidates
    are shuffled (seeded by the user id) so that no ranking can profit from the target
    standing first. Resets the critic loop's bookkeeping.

    Raises:
        DataError: unknown user or item id, a user too short to evaluate, no candidates.
    """
    dataset = runtime.context.dataset
    stage = runtime.context.settings.stage
    user = state["user_id"]
    with traced("load_user", user_id=user, stage=stage) as trace:
        if state.get("history"):
            if len(state["history"]) > MAX_HISTORY:
                raise DataError(
                    f"history of user `{user}` has {len(state['history'])} items; at most "
                    f"{MAX_HISTORY} per run (the prompt reads only the last few)"
                )
            history = _known(dataset, state["history"])
        else:
            history = [dataset.item(i).item_id for i in dataset.history(user, stage)]
        if not history:
            raise DataError(
                f"user `{user}` has an empty history: give at least one item id in `history`"
            )
        if state.get("candidates"):
            candidates = list(dict.fromkeys(state["candidates"]))
            if len(candidates) > MAX_CANDIDATES:
                raise DataError(
                    f"{len(candidates)} candidates given; at most {MAX_CANDIDATES} per run"
                )
            _known(dataset, candidates)
        else:
            candidates = [dataset.item(i).item_id for i in dataset.candidates(user, stage)]
            random.Random(f"candidates-{user}").shuffle(candidates)
        trace["outputs"] = {
            "history": history[-50:],
            "n_history": len(history),
            "candidates": candidates[:TRACED],  # a whole catalogue: its first ones
            "n_candidates": len(candidates),
        }
    return {
        "history": history,
        "candidates": candidates,
        "top_k": state.get("top_k") or runtime.context.settings.top_k,
        "to_summarize": [],
        "drafts": {},
        "feedback": {},
        "critic_round": 0,
        "similar_users": [],
        "recommendations": [],
        "trace": [trace["record"]],
    }


def _known(dataset: Dataset, item_ids: list[str]) -> list[str]:
    """`item_ids` as strings, after checking each is in the catalog (DataError otherwise)."""
    ids = [str(item_id) for item_id in item_ids]
    for item_id in ids:
        dataset.index_of(item_id)
    return ids
