"""Conversation benchmark: requests with constraints checkable from catalog metadata, and
scripted multi-turn conversations, sent over HTTP to the real app (`mmsrarec serve`, packaged
models) on 127.0.0.1.

    python benchmarks/conversation.py                 # the default fused ranker, ./runs
    python benchmarks/conversation.py --before   # the chat of the base commit, same requests

Metrics (per part: `dev`, `measured`, `conversations`):
- `sat@5`: of the items shown (top 5), the share meeting every constraint of the turn
  (required genres, excluded genres, year range; ML-100K item text), over turns with items;
- `strict_sat@5`: the same with empty replies counted as 0 satisfied of 5;
- `empty_rate`: turns that should recommend but returned nothing;
- `banned_returned`: turns returning a title the user liked, disliked or had seen;
- p50 / p95 turn latency (HTTP round trip), the first turn of the run (warm-up) left out.

The request set is split once: `dev` (for looking at failures while building) and
`measured` (only run for the report; never tuned on). Constraints are what a person would
expect from the text, written before running it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASE_COMMIT = "4ea7ac3"  # the chat before issue 12 (= main when this branch started)

# (text, required genres, excluded genres, (year_min, year_max) or None)
DEV = [
    ("a romantic comedy from the 90s", ["Romance", "Comedy"], [], (1990, 1999)),
    ("a scary horror movie", ["Horror"], [], None),
    (
        "something funny without violence",
        ["Comedy"],
        ["Action", "Crime", "Horror", "War", "Thriller"],
        None,
    ),  # noqa: E501
    ("a western", ["Western"], [], None),
    ("an animated film for the family", ["Animation", "Children's"], [], None),
    ("a thriller from the 80s", ["Thriller"], [], (1980, 1989)),
    ("not a drama, something from the 70s", [], ["Drama"], (1970, 1979)),
    ("a sci-fi movie but no horror", ["Sci-Fi"], ["Horror"], None),
    ("a documentary", ["Documentary"], [], None),
    ("a war film from before 1970", ["War"], [], (None, 1969)),
    ("I don't like comedies, give me a crime film", ["Crime"], ["Comedy"], None),
    ("a musical from the fifties", ["Musical"], [], (1950, 1959)),
    ("a mystery", ["Mystery"], [], None),
    ("a funny film from 1996", ["Comedy"], [], (1996, 1996)),
    ("film noir", ["Film-Noir"], [], None),
]
MEASURED = [
    ("romantic comedies from the nineties please", ["Romance", "Comedy"], [], (1990, 1999)),
    ("a horror film from the 70s", ["Horror"], [], (1970, 1979)),
    ("an action movie that is not a thriller", ["Action"], ["Thriller"], None),
    ("a comedy, no romance", ["Comedy"], ["Romance"], None),
    ("something for the kids", ["Children's"], [], None),
    ("a drama from the 1940s", ["Drama"], [], (1940, 1949)),
    ("an adventure movie from the 80s", ["Adventure"], [], (1980, 1989)),
    ("a crime drama", ["Crime", "Drama"], [], None),
    ("sci-fi from the 1990s", ["Sci-Fi"], [], (1990, 1999)),
    ("a fantasy film", ["Fantasy"], [], None),
    ("a thriller without horror", ["Thriller"], ["Horror"], None),
    ("a war movie", ["War"], [], None),
    ("a musical", ["Musical"], [], None),
    ("a funny movie from the early 90s", ["Comedy"], [], (1990, 1993)),
    ("a romance from the 60s", ["Romance"], [], (1960, 1969)),
    ("a cartoon", ["Animation"], [], None),
    ("not a comedy, something from 1997", [], ["Comedy"], (1997, 1997)),
    ("a mystery thriller", ["Mystery", "Thriller"], [], None),
    ("an old western", ["Western"], [], (None, 1969)),
    ("a movie from between 1975 and 1985", [], [], (1975, 1985)),
    ("a drama but no war and no crime", ["Drama"], ["War", "Crime"], None),
    ("an action movie from the 90s", ["Action"], [], (1990, 1999)),
    ("a horror comedy", ["Horror", "Comedy"], [], None),
    ("a sci-fi adventure", ["Sci-Fi", "Adventure"], [], None),
    ("a children's movie that isn't animated", ["Children's"], ["Animation"], None),
    ("I hate horror, want a thriller from the 90s", ["Thriller"], ["Horror"], (1990, 1999)),
    ("a documentary from the 90s", ["Documentary"], [], (1990, 1999)),
    ("a late 80s comedy", ["Comedy"], [], (1986, 1989)),
    ("a film after 1995 that is not a drama", [], ["Drama"], (1996, None)),
    ("a romantic drama", ["Romance", "Drama"], [], None),
]
# Conversations: each turn = (text, genres, avoid, years, titles that must not come back,
# should recommend). Constraints are cumulative, as the user would expect.
CONVERSATIONS = [
    [
        ("a romantic comedy from the 90s", ["Romance", "Comedy"], [], (1990, 1999), [], True),
        ("something older", ["Romance", "Comedy"], [], (1980, 1989), [], True),
        ("start over", [], [], None, [], False),
        ("a western", ["Western"], [], None, [], True),
    ],
    [
        ("I hated Titanic", [], [], None, ["Titanic (1997)"], False),
        ("a romance from the 90s", ["Romance"], [], (1990, 1999), ["Titanic (1997)"], True),
        ("not a drama", ["Romance"], ["Drama"], (1990, 1999), ["Titanic (1997)"], True),
    ],
    [
        ("loved Star Wars and Alien", [], [], None, ["Star Wars (1977)", "Alien (1979)"], True),
        ("only sci-fi", ["Sci-Fi"], [], None, ["Star Wars (1977)", "Alien (1979)"], True),
        ("from the 80s", ["Sci-Fi"], [], (1980, 1989), ["Star Wars (1977)", "Alien (1979)"], True),  # noqa: E501
    ],
    [
        ("something funny", ["Comedy"], [], None, [], True),
        (
            "less violent",
            ["Comedy"],
            ["Action", "Crime", "Horror", "War", "Thriller"],
            None,
            [],
            True,
        ),  # noqa: E501
        (
            "from the 80s",
            ["Comedy"],
            ["Action", "Crime", "Horror", "War", "Thriller"],
            (1980, 1989),
            [],
            True,
        ),  # noqa: E501
    ],
    [
        ("loved Fargo", [], [], None, ["Fargo (1996)"], True),
        ("asdf qwzx", [], [], None, ["Fargo (1996)"], False),
        ("a crime film", ["Crime"], [], None, ["Fargo (1996)"], True),
    ],
    [
        ("a horror movie", ["Horror"], [], None, [], True),
        ("I've seen it", ["Horror"], [], None, [], True),
        ("something older", ["Horror"], [], None, [], True),
    ],
    [
        ("a thriller from the 90s", ["Thriller"], [], (1990, 1999), [], True),
        ("more like the second one", ["Thriller"], [], (1990, 1999), [], True),
        ("but no crime", ["Thriller"], ["Crime"], (1990, 1999), [], True),
    ],
    [
        ("loved Toy Story", [], [], None, ["Toy Story (1995)"], True),
        ("an animated one", ["Animation"], [], None, ["Toy Story (1995)"], True),
        (
            "I didn't like Aladdin",
            ["Animation"],
            [],
            None,
            ["Toy Story (1995)", "Aladdin (1992)"],
            True,
        ),  # noqa: E501
    ],
    [
        ("a drama from the 50s", ["Drama"], [], (1950, 1959), [], True),
        ("newer", ["Drama"], [], (1960, 1969), [], True),
        ("no war", ["Drama"], ["War"], (1960, 1969), [], True),
        ("start over", [], [], None, [], False),
        ("a musical", ["Musical"], [], None, [], True),
    ],
    [
        ("I liked Heat and hated Casino", [], [], None, ["Heat (1995)", "Casino (1995)"], True),
        ("an action film", ["Action"], [], None, ["Heat (1995)", "Casino (1995)"], True),
        ("from before 1990", ["Action"], [], (None, 1989), ["Heat (1995)", "Casino (1995)"], True),
    ],
]

GENRES = re.compile(r"Genres:\s*([^.]+)\.")
YEAR = re.compile(r"\((\d{4})\)\s*$")


def load_catalog() -> dict[str, dict]:
    """item id -> title, year, genres, from the prepared ML-100K (not from the chat code)."""
    path = Path.home() / ".cache/mmsrarec/data/ml-100k/items.jsonl"
    catalog = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        year = YEAR.search(row["title"])
        genres = GENRES.search(row["text"])
        catalog[str(row["item_id"])] = {
            "title": row["title"],
            "year": int(year.group(1)) if year else None,
            "genres": {g.strip() for g in genres.group(1).split(",")} if genres else set(),
        }
    return catalog


def satisfied(item: dict, genres, avoid, years) -> bool:
    if not set(genres) <= item["genres"] or set(avoid) & item["genres"]:
        return False
    if years is None:
        return True
    low, high = years
    year = item["year"]
    return year is not None and (low is None or year >= low) and (high is None or year <= high)


def start_server(code: Path, port: int, args: argparse.Namespace) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1", "MMSRAREC_THREADS": "1"}
    command = [
        sys.executable, "-c", "from mmsrarec.cli import main; main()", "serve",
        "--port", str(port), "--run-dir", str(args.run_dir), "--in-memory",
        "--scorer", args.scorer, "--k-similar", str(args.k_similar),
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=code)
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(2)
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}")
    server.kill()
    raise SystemExit(f"server not up after {args.start_timeout} s (training? stopped)")


def run_turns(client: httpx.Client, catalog, turns) -> list[dict]:
    """Send one conversation; one result row per turn."""
    by_title: dict[str, list[str]] = {}
    for item_id, item in catalog.items():
        by_title.setdefault(item["title"], []).append(item_id)
    thread, rows = None, []
    for text, genres, avoid, years, banned, should in turns:
        started = time.perf_counter()
        reply = client.post("/api/chat", json={"message": text, "thread_id": thread})
        seconds = time.perf_counter() - started
        reply.raise_for_status()
        body = reply.json()
        thread = body["thread_id"]
        ids = [r["item_id"] for r in body["recommendations"]][:5]
        turns_view = client.get(f"/api/traces/{thread}").json().get("turns", [{}])
        summarized = any(
            r["node"] == "summarize" and r["inputs"].get("items")
            for r in turns_view[-1].get("records", [])
        )
        banned_ids = {i for title in banned for i in by_title.get(title, [])}
        rows.append(
            {
                "text": text,
                "seconds": round(seconds, 3),
                "summarized": summarized,  # the LLM wrote keywords for a new title this turn
                "titles": [catalog[i]["title"] for i in ids],
                "n_ok": sum(satisfied(catalog[i], genres, avoid, years) for i in ids),
                "n": len(ids),
                "should_recommend": should,
                "banned_returned": bool(banned_ids & set(ids)),
            }
        )
    return rows


def summary(rows: list[dict]) -> dict:
    scored = [r for r in rows if r["should_recommend"]]
    shown = [r for r in scored if r["n"]]
    return {
        "turns": len(rows),
        "sat@5": round(sum(r["n_ok"] for r in shown) / max(1, sum(r["n"] for r in shown)), 3),
        "strict_sat@5": round(sum(r["n_ok"] for r in scored) / max(1, 5 * len(scored)), 3),
        "empty_rate": round(sum(not r["n"] for r in scored) / max(1, len(scored)), 3),
        "banned_returned": sum(r["banned_returned"] for r in rows),
    }


def latency(rows: list[dict]) -> dict:
    """p50 / p95 of all turns but the first (warm-up), and of those without a first-time
    summarization (the LLM writing keywords for a title it had not seen; cached after)."""
    out = {}
    for name, chosen in (
        ("all", rows[1:]),
        ("without_first_summarization", [r for r in rows[1:] if not r.get("summarized")]),
    ):
        seconds = sorted(r["seconds"] for r in chosen)
        if not seconds:  # e.g. the old chat summarizes on every turn
            out[name] = {"turns": 0, "p50_s": None, "p95_s": None}
            continue
        out[name] = {
            "turns": len(seconds),
            "p50_s": round(statistics.median(seconds), 3),
            "p95_s": round(seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))], 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path("runs").resolve(),
        help="Trained models (SASRec, the LLM recommender) to reuse.",
    )
    parser.add_argument("--scorer", default="mmsrarec", help="The ranker (`--scorer` of serve).")
    parser.add_argument("--k-similar", type=int, default=3)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--start-timeout", type=int, default=420)
    parser.add_argument("--before", action="store_true", help=f"serve the chat of {BASE_COMMIT}")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="Only the first N requests (and conversations) of each part.",
    )
    parser.add_argument(
        "--parts",
        default="dev,measured,conversations",
        help="Which parts to run (comma-separated).",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    label = "before" if args.before else "after"
    with tempfile.TemporaryDirectory() as tmp:
        code = ROOT
        if args.before:
            code = Path(tmp)
            archive = subprocess.run(
                ["git", "archive", BASE_COMMIT, "mmsrarec"],
                cwd=ROOT,
                capture_output=True,
                check=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        catalog = load_catalog()
        server = start_server(code, args.port, args)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=600) as client:
                results: dict[str, list[dict]] = {}
                for part, requests in (("dev", DEV), ("measured", MEASURED)):
                    if part in parts:
                        results[part] = [
                            run_turns(client, catalog, [(t, g, a, y, [], True)])[0]
                            for t, g, a, y in requests[: args.limit]
                        ]
                if "conversations" in parts:
                    results["conversations"] = [
                        row
                        for turns in CONVERSATIONS[: args.limit]
                        for row in run_turns(client, catalog, turns)
                    ]
        finally:
            server.terminate()
            server.wait(timeout=30)
    every = [row for rows in results.values() for row in rows]
    report = {
        "label": label,
        "scorer": args.scorer,
        "limit": args.limit,
        "parts": {part: summary(rows) for part, rows in results.items()},
        "latency": latency(every),
        "rows": results,
    }
    out = args.out or HERE / f"conversation_{label}.json"
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
