"""Conversation benchmark by phrasing family (issue 25): compositional requests whose intent
is known by construction (`tests/request_grammar.py`), run through the real chat service in
this process (packaged MiniLM encoder and SmolLM2-135M, ML-100K), plus the hand-written
requests of `conversation.py` as a third set.

    python benchmarks/conversation_families.py --write-sets   # regenerate the committed sets
    python benchmarks/conversation_families.py                # -> conversation_families.json

Per family and per set (`dev`, `measure`, `handwritten`):
- `sat@5`: of the items shown (top 5), the share meeting every hard condition of the turn's
  constructed intent (genres, excluded genres, allowed years, a liked title's genres, never a
  liked / disliked / series title), checked against ML-100K's own genres and years;
- `intent_exact`: turns whose parsed intent equals the construction (required and excluded
  genres, the set of allowed years, liked, disliked and series-excluded titles);
- `empty_rate`: turns that should answer and showed nothing;
- p50 / p95 turn latency (in process; the first turn of the run left out).

The measurement families are only run for these aggregate numbers, never read for failures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from request_grammar import SEED, Case, Catalog, Turn, Want, generate  # noqa: E402

SETS = HERE / "conversation_sets.jsonl"
ITEMS = Path.home() / ".cache/mmsrarec/data/ml-100k/items.jsonl"
GENRES = re.compile(r"Genres:\s*([^.]+)\.")
YEAR = re.compile(r"\((\d{4})\)\s*$")


def catalog_rows() -> list[tuple[str, str, int | None, list[str]]]:
    """(item id, title, year, genres) from the prepared ML-100K item text (not the chat's)."""
    rows = []
    for line in ITEMS.read_text().splitlines():
        row = json.loads(line)
        year, genres = YEAR.search(row["title"]), GENRES.search(row["text"])
        names = [g.strip() for g in genres.group(1).split(",")] if genres else []
        names = [g for g in names if g.lower() != "unknown"]
        found = int(year.group(1)) if year else None
        rows.append((str(row["item_id"]), row["title"], found, names))
    return rows


def want_json(want: Want) -> dict:
    return {
        "genres": sorted(want.genres),
        "avoid": sorted(want.avoid),
        "years": [list(r) for r in want.years],
        "avoid_years": [list(r) for r in want.avoid_years],
        "liked": list(want.liked),
        "disliked": list(want.disliked),
        "series": list(want.series),
    }


def want_of(row: dict) -> Want:
    return Want(
        genres=frozenset(row["genres"]),
        avoid=frozenset(row["avoid"]),
        years=tuple(tuple(r) for r in row["years"]),
        avoid_years=tuple(tuple(r) for r in row["avoid_years"]),
        liked=tuple(row["liked"]),
        disliked=tuple(row["disliked"]),
        series=tuple(row["series"]),
    )


def write_sets(path: Path, seed: int) -> None:
    catalog = Catalog.from_rows([row[1:] for row in catalog_rows()])
    with path.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"seed": seed}) + "\n")
        for case in generate(catalog, seed):
            turns = [
                {"text": t.text, "want": want_json(t.want), "recommend": t.recommend}
                for t in case.turns
            ]
            handle.write(json.dumps({"family": case.family, "split": case.split, "turns": turns}))
            handle.write("\n")


def read_sets(path: Path) -> list[Case]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    cases = []
    for line in lines:
        row = json.loads(line)
        turns = tuple(Turn(t["text"], want_of(t["want"]), t["recommend"]) for t in row["turns"])
        cases.append(Case(row["family"], row["split"], turns))
    return cases


def handwritten_cases() -> list[Case]:
    """`conversation.py`'s requests and conversations as cases (no intent to compare)."""
    import conversation as hand

    def want(genres, avoid, years, banned=()) -> Want:
        spans = (tuple(years),) if years else ()
        return Want(frozenset(genres), frozenset(avoid), spans, disliked=tuple(banned))

    cases = [
        Case("handwritten_" + part, "handwritten", (Turn(t, want(g, a, y)),))
        for part, requests in (("dev", hand.DEV), ("measured", hand.MEASURED))
        for t, g, a, y in requests
    ]
    for turns in hand.CONVERSATIONS:
        cases.append(
            Case(
                "handwritten_conversations",
                "handwritten",
                tuple(
                    Turn(t, want(g, a, y, banned), should) for t, g, a, y, banned, should in turns
                ),
            )
        )
    return cases


class Checker:
    """Checks answers and parsed intents against constructions, from ML-100K's own text."""

    def __init__(self) -> None:
        rows = catalog_rows()
        self.catalog = Catalog.from_rows([row[1:] for row in rows])
        self.by_id = {item_id: self.catalog.by_title[title] for item_id, title, _, _ in rows}
        self.ids_of: dict[str, set[str]] = defaultdict(set)
        for item_id, title, _, _ in rows:
            self.ids_of[title].add(item_id)

    def satisfied(self, item_id: str, want: Want) -> bool:
        return self.catalog.meets(self.by_id[item_id], want)

    def ids(self, titles) -> frozenset[str]:
        return frozenset(i for t in titles for i in self.ids_of[t])

    def expected(self, want: Want) -> dict:
        return {
            "genres": set(want.genres),
            "avoid": set(want.avoid),
            "years": set(want.allowed_years(self.catalog.span)),
            "liked": set(self.ids(want.liked)),
            "disliked": set(self.ids(want.disliked)),
            "series": set(self.ids(want.series)),
        }

    def parsed(self, intent: dict) -> dict:
        """The chat's intent in the construction's terms."""
        low, high = self.catalog.span
        years = set(range(intent.get("year_min") or low, (intent.get("year_max") or high) + 1))
        for a, b in intent.get("avoid_years") or []:
            years -= set(range(a, b + 1))
        return {
            "genres": set(intent["genres"]) | set((intent.get("moods") or {}).values()),
            "avoid": set(intent["avoid_genres"]) | set((intent.get("avoid_moods") or {}).values()),
            "years": {y for y in years if low <= y <= high},
            "liked": set(intent["liked"]),
            "disliked": set(intent["disliked"]),
            "series": set(intent.get("series") or []),
        }


def run_case(service, checker: Checker, case: Case, compare: bool) -> list[dict]:
    thread, rows = service.new_thread(), []
    for turn in case.turns:
        started = time.perf_counter()
        out = service.chat(thread, turn.text)
        seconds = time.perf_counter() - started
        ids = [r["item_id"] for r in out["recommendations"]][:5]
        intent = out.get("intent") or {}
        exact = None
        if compare and intent:
            exact = checker.parsed(intent) == checker.expected(turn.want)
        rows.append(
            {
                "family": case.family,
                "split": case.split,
                "text": turn.text,
                "seconds": round(seconds, 4),
                "n": len(ids),
                "n_ok": sum(checker.satisfied(i, turn.want) for i in ids),
                "recommend": turn.recommend,
                "exact": exact,
                "relaxed": out.get("relaxed") or [],
                "intent_line": out.get("intent_line", ""),
            }
        )
    return rows


def summary(rows: list[dict]) -> dict:
    scored = [r for r in rows if r["recommend"]]
    shown = [r for r in scored if r["n"]]
    exact = [r["exact"] for r in scored if r["exact"] is not None]
    seconds = sorted(r["seconds"] for r in rows)
    return {
        "turns": len(rows),
        "sat@5": round(sum(r["n_ok"] for r in shown) / max(1, sum(r["n"] for r in shown)), 3),
        "intent_exact": round(sum(exact) / len(exact), 3) if exact else None,
        "empty_rate": round(sum(not r["n"] for r in scored) / max(1, len(scored)), 3),
        "relaxed_turns": sum(bool(r["relaxed"]) for r in scored),
        "p50_s": round(statistics.median(seconds), 3) if seconds else None,
        "p95_s": round(seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))], 3)
        if seconds
        else None,
    }


def table(report: dict) -> str:
    """The report as Markdown: one row per set, then one per family."""
    head = "| {} | turns | sat@5 | exact intent | empty | relaxed | p50 s | p95 s |"
    lines = [head.format("set"), "|---|---|---|---|---|---|---|---|"]

    def row(name: str, v: dict) -> str:
        exact = "–" if v["intent_exact"] is None else f"{v['intent_exact']:.3f}"
        return (
            f"| {name} | {v['turns']} | {v['sat@5']:.3f} | {exact} | {v['empty_rate']:.3f} | "
            f"{v['relaxed_turns']} | {v['p50_s']:.3f} | {v['p95_s']:.3f} |"
        )

    lines += [row(f"**{name}**", v) for name, v in report["splits"].items()]
    lines += ["", head.format("family"), lines[1]]
    lines += [row(name, v) for name, v in report["families"].items()]
    return "\n".join(lines)


def build_service(args: argparse.Namespace):
    from mmsrarec.chat.context import ChatSettings
    from mmsrarec.chat.factory import build_chat_service
    from mmsrarec.config import Settings
    from mmsrarec.nodes.context import GraphSettings

    settings = Settings(run_dir=args.run_dir)
    run = GraphSettings(scorer=args.scorer, k_similar=args.k_similar)
    chat = ChatSettings(intent_reader=args.reader)
    return build_chat_service(settings, run, chat, critic=not args.no_critic, in_memory=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-sets", action="store_true", help="regenerate the sets file")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--splits", default="dev,measure,handwritten")
    parser.add_argument("--families", default="", help="only these families (comma-separated)")
    parser.add_argument("--limit", type=int, default=None, help="cases per family")
    parser.add_argument("--run-dir", type=Path, default=Path("runs").resolve())
    parser.add_argument("--scorer", default="item-knn", help="the rank node's ranker")
    parser.add_argument("--k-similar", type=int, default=0)
    parser.add_argument("--no-critic", action="store_true")
    parser.add_argument(
        "--reader",
        default="rules",
        choices=["rules", "llm", "both"],
        help="who reads genres and years (`ChatSettings.intent_reader`)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "conversation_families.json")
    parser.add_argument("--failures", type=Path, default=None, help="dev failures (JSONL)")
    parser.add_argument("--table", action="store_true", help="print --out as Markdown")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return
    if args.write_sets:
        write_sets(SETS, args.seed)
        print(f"wrote {SETS}")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    splits = set(args.splits.split(","))
    families = set(filter(None, args.families.split(",")))
    cases = [c for c in read_sets(SETS) if c.split in splits]
    if "handwritten" in splits:
        cases += handwritten_cases()
    if families:
        cases = [c for c in cases if c.family in families]
    if args.limit:
        per: dict[str, int] = defaultdict(int)
        kept = []
        for case in cases:
            per[case.family] += 1
            if per[case.family] <= args.limit:
                kept.append(case)
        cases = kept
    checker = Checker()
    service = build_service(args)
    service.chat(service.new_thread(), "a comedy")  # warm-up, left out
    rows = [
        row
        for case in cases
        for row in run_case(service, checker, case, compare=case.split != "handwritten")
    ]
    by_family: dict[str, list[dict]] = defaultdict(list)
    by_split: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_family[row["family"]].append(row)
        by_split[row["split"]].append(row)
    families_out = {name: summary(part) for name, part in sorted(by_family.items())}
    measured = {k: v for k, v in families_out.items() if k.startswith("m_")}
    worst = (
        min(measured, key=lambda k: (measured[k]["sat@5"], measured[k]["intent_exact"] or 0))
        if measured
        else None
    )
    report = {
        "seed": args.seed,
        "scorer": args.scorer,
        "reader": args.reader,
        "limit": args.limit,
        "splits": {name: summary(part) for name, part in sorted(by_split.items())},
        "families": families_out,
        "worst_measure_family": worst,
    }
    if args.failures:  # dev and handwritten only: the measurement set is never read
        with args.failures.open("w", encoding="utf-8") as handle:
            for row in rows:
                bad = (
                    row["exact"] is False
                    or row["n_ok"] < row["n"]
                    or (row["recommend"] and not row["n"])
                )
                if bad and row["split"] != "measure":
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
