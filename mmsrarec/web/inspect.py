"""A thread's trace as the run inspector shows it: one view per turn.

Each view holds the path the turn took (node names in order, the critic's loop visible as a
repeated `summarize -> critique`), the intent, every record (with a label naming the model or
encoder it ran), the critic's scores per round with the formula and weights that decided
them (recorded by the critique node from `critic.weighted_total`'s own terms), the similar
users, the candidate scores, each recommendation's evidence (the ranker's parts of its score
and the history items that move it, then the supporting words), the user's motivations and
the timings. Items are shown as "Title (id)".

Timings: `rank` runs the recommendation graph, so its record's time includes its children's
(`load_user` ... `recommend`, the records right after it). Each timing row holds the node's
own time (`seconds`, children excluded) and `depth` (1 for a child); the turn's total adds
own times only, so nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmsrarec.chat.graph import split_runs
from mmsrarec.trace import verify_trace

CHILDREN = frozenset({"load_user", "summarize", "critique", "retrieve", "recommend"})


def timings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Own time per record: a parent's time less its children's (see the module doc)."""
    rows = []
    parent: dict[str, Any] | None = None
    for record in records:
        child = record["node"] in CHILDREN and parent is not None
        if not child:
            parent = {"node": record["node"], "seconds": record["seconds"], "depth": 0}
            parent["total"] = record["seconds"]
            rows.append(parent)
        else:
            rows.append({"node": record["node"], "seconds": record["seconds"], "depth": 1})
            parent["seconds"] = round(max(0.0, parent["seconds"] - record["seconds"]), 4)
        if record["node"] != "rank" and not child:
            parent = None
    return rows


def _label(record: dict[str, Any], retriever: str | None) -> str:
    """What ran in a record: its model, or for `retrieve` the retriever (the LLM there only
    writes keywords for items that had none)."""
    if record["node"] == "retrieve":
        label = f"retriever: {retriever or 'none'}"
        return label + (f"; new keywords by {record['model']}" if record.get("model") else "")
    return record.get("model") or ""


def turn_view(
    records: list[dict[str, Any]], title_of: Callable[[str], str] = str
) -> dict[str, Any]:
    """What the inspector shows for one turn's records; `title_of` names an item id."""

    def named(item_id: str) -> str:
        return f"{title_of(item_id)} ({item_id})" if title_of is not str else item_id

    first = records[0]
    rank = next((r for r in records if r["node"] == "rank"), {"outputs": {}})
    critic = rank["outputs"].get("critic")
    rows = timings(records)
    view: dict[str, Any] = {
        "turn": first.get("inputs", {}).get("turn"),
        "message": first.get("inputs", {}).get("message", ""),
        "intent": first.get("outputs", {}).get("intent", {}),
        "intent_line": first.get("outputs", {}).get("intent_line", ""),
        "path": [record["node"] for record in records],
        "seconds": round(sum(row["seconds"] for row in rows), 4),
        "timings": rows,
        "critic": critic,
        "critic_rounds": [],
        "similar_users": [],
        "scores": {},
        "evidence": [],
        "motivations": rank["outputs"].get("motivations", []),
        "relaxed": [],
        "reply": "",
        "records": [{**r, "label": _label(r, rank["outputs"].get("retriever"))} for r in records],
    }
    threshold = critic["threshold"] if critic else None
    for record in records:
        outputs = record.get("outputs", {})
        if record["node"] == "critique" and outputs.get("rule"):
            view["critic"] = critic = outputs["rule"]  # the rule that decided, as recorded
            threshold = critic["threshold"]
        if record["node"] == "critique" and outputs.get("scores"):
            scores = {
                named(item_id): {**s, "feedback": s["feedback"] or _kept(s["total"], threshold)}
                for item_id, s in outputs["scores"].items()
            }
            view["critic_rounds"].append({"round": record["inputs"].get("round"), "scores": scores})
        elif record["node"] == "retrieve" and outputs.get("enabled"):
            keywords = outputs.get("keywords", {})
            view["similar_users"] = [
                {
                    "user_id": u,
                    "similarity": s,
                    "next_item": named(i),
                    "keywords": keywords.get(i, []),
                }
                for u, s, i in zip(
                    outputs["user_ids"], outputs["similarities"], outputs["next_items"], strict=True
                )
            ]
        elif record["node"] == "recommend":
            view["scores"] = {named(i): s for i, s in outputs.get("scores", {}).items()}
            view["evidence"] = [
                _evidence_row(named(i), e, named) for i, e in outputs.get("evidence", {}).items()
            ]
        elif record["node"] == "relax":
            view["relaxed"].append(outputs.get("dropped"))
        elif record["node"] in ("reply", "clarify"):
            view["reply"] = outputs.get("reply", "")
    return view


def _evidence_row(item: str, evidence: dict[str, Any], named: Callable[[str], str]) -> dict:
    """One recommendation's evidence with its history items named."""
    pairs = zip(evidence["cited_history"], evidence["cited_drops"], strict=True)
    return {
        "item": item,
        "contributions": evidence["contributions"],
        "cited": [{"item": named(i), "drop": d} for i, d in pairs],
        "supporting_keywords": evidence["supporting_keywords"],
        "supporting_users": evidence["supporting_users"],
    }


def _kept(total: float, threshold: float | None) -> str:
    if threshold is None:
        return "none"
    verdict = "kept" if total >= threshold else "best of the allowed rounds kept"
    return f"none needed: total {total:.3f} vs threshold {threshold} ({verdict})"


def inspect_thread(
    thread_id: str, records: list[dict[str, Any]], title_of: Callable[[str], str] = str
) -> dict[str, Any]:
    """The whole thread: chain check, then one view per turn (oldest first)."""
    broken = verify_trace(records)
    return {
        "thread_id": thread_id,
        "verified": broken is None,
        "broken_at": broken,
        "n_records": len(records),
        "turns": [turn_view(run, title_of) for run in split_runs(records)],
    }
