"""A thread's trace as the run inspector shows it: one view per turn.

Each view holds the path the turn took (node names in order, the critic's loop visible as a
repeated `summarize -> critique`), every record, the critic's scores per round, the similar
users with their keywords, the candidate scores and the timings.
"""

from __future__ import annotations

from typing import Any

from mmsrarec.chat.graph import split_runs
from mmsrarec.trace import verify_trace


def turn_view(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the inspector shows for one turn's records."""
    view: dict[str, Any] = {
        "turn": records[0].get("inputs", {}).get("turn"),
        "message": records[0].get("inputs", {}).get("message", ""),
        "path": [record["node"] for record in records],
        "seconds": round(sum(r["seconds"] for r in records if r["node"] != "rank"), 4),
        "timings": [{"node": r["node"], "seconds": r["seconds"]} for r in records],
        "critic_rounds": [],
        "similar_users": [],
        "scores": {},
        "reply": "",
        "records": records,
    }
    for record in records:
        outputs = record.get("outputs", {})
        if record["node"] == "critique" and outputs.get("scores"):
            view["critic_rounds"].append(
                {"round": record["inputs"].get("round"), "scores": outputs["scores"]}
            )
        elif record["node"] == "retrieve" and outputs.get("enabled"):
            keywords = outputs.get("keywords", {})
            view["similar_users"] = [
                {"user_id": u, "similarity": s, "next_item": i, "keywords": keywords.get(i, [])}
                for u, s, i in zip(
                    outputs["user_ids"], outputs["similarities"], outputs["next_items"], strict=True
                )
            ]
        elif record["node"] == "recommend":
            view["scores"] = outputs.get("scores", {})
        elif record["node"] in ("reply", "clarify"):
            view["reply"] = outputs.get("reply", "")
    return view


def inspect_thread(thread_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole thread: chain check, then one view per turn (oldest first)."""
    broken = verify_trace(records)
    return {
        "thread_id": thread_id,
        "verified": broken is None,
        "broken_at": broken,
        "n_records": len(records),
        "turns": [turn_view(run) for run in split_runs(records)],
    }
