"""Replica benchmark on loopback: 1 or 2 app processes over one PostgreSQL and one Chroma
server, all started here. `--app serve`: `mmsrarec serve` itself with the tests' tiny local
models (a 2-layer LM, a tiny encoder; item-kNN ranker, 2 similar users); `--app scripted`:
`tests/fake_server.py` (serve's wiring, scripted parts, no LLM at all). Sessions send their
turns round-robin over the replicas (turn t of session s goes to replica (s + t) mod n, as a
load balancer without affinity would), so with 2 replicas every conversation hops at each
turn.

Reports requests per second, p50/p95 latency, errors, and lost turns: at the end every
thread must hold exactly its 2 x turns messages, in order, with the texts sent.

    python benchmarks/replicas.py --app serve scripted --replicas 1 2 --sessions 16 --turns 4

Needs PostgreSQL (`apt-get install postgresql`) and `pip install -e '.[postgres]'`.
Writes `benchmarks/replicas.json` and `benchmarks/REPLICAS.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
WANTS = ["something tense", "a funny one", "something romantic", "an adventure", "older"]


def conversation(session: int, turns: int) -> list[str]:
    return [
        f"loved Movie {1 + (session * 3 + t) % 40}, want {WANTS[(session + t) % len(WANTS)]}"
        f" #s{session}t{t}"
        for t in range(turns)
    ]


def run_session(urls: list[str], session: int, turns: int) -> dict:
    """One user: a session from the first replica, then turns spread over all of them."""
    out: dict = {"latencies": [], "errors": [], "thread": None, "sent": []}
    clients = [httpx.Client(base_url=url, timeout=120) for url in urls]
    try:
        token = clients[session % len(urls)].post("/api/session").json()["session"]
        headers = {"X-Session-Token": token}
        for turn, text in enumerate(conversation(session, turns)):
            client = clients[(session + turn) % len(urls)]
            started = time.perf_counter()
            try:
                answer = client.post(
                    "/api/chat", headers=headers, json={"message": text, "thread_id": out["thread"]}
                )
            except httpx.HTTPError as exc:
                out["errors"].append(f"{type(exc).__name__}")
                continue
            out["latencies"].append(time.perf_counter() - started)
            if answer.status_code != 200:
                out["errors"].append(f"{answer.status_code}: {answer.text[:80]}")
                continue
            out["thread"] = answer.json()["thread_id"]
            out["sent"].append(text)
        out["token"] = token
    finally:
        for client in clients:
            client.close()
    return out


def lost_turns(url: str, results: list[dict]) -> int:
    """Answered turns missing from, or out of order in, the stored conversations."""
    lost = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for result in results:
            if result["thread"] is None:
                continue
            messages = client.get(
                f"/api/threads/{result['thread']}/messages",
                headers={"X-Session-Token": result["token"]},
            ).json()["messages"]
            said = [m["text"] for m in messages if m["role"] == "user"]
            kept = sum(a == b for a, b in zip(said, result["sent"], strict=False))
            lost += len(result["sent"]) - kept
            lost += abs(len(messages) - 2 * len(said))
    return lost


def measure(app: str, n_replicas: int, sessions: int, turns: int, workers: int) -> dict:
    from conftest import write_tiny_jsonl
    from services import AppServer, ChromaServer, Postgres, ServeProcess, postgres_missing
    from tiny_models import build_tiny_causal_lm, build_tiny_encoder

    from mmsrarec.data import prepare_dataset

    reason = postgres_missing()
    if reason:
        sys.exit(f"error: {reason}")
    tmp = Path(tempfile.mkdtemp(prefix="mmsrarec-replicas-"))
    folder, _ = prepare_dataset(write_tiny_jsonl(tmp / "tiny"), tmp / "data", negatives=5)
    postgres, chroma, servers = Postgres(), ChromaServer(tmp / "chroma"), []
    try:
        encoder = str(build_tiny_encoder(tmp / "encoder"))
        lm = str(build_tiny_causal_lm(tmp / "lm"))
        database_url = postgres.create_database("bench")
        for n in range(n_replicas):
            if app == "serve":
                args = [
                    *("--model", lm, "--no-critic"),
                    *("--dataset", folder.name, "--data-dir", str(tmp / "data")),
                    *("--run-dir", str(tmp / "runs"), "--scorer", "item-knn", "--k-similar", "2"),
                    *("--database-url", database_url, "--chroma-url", chroma.url),
                ]
                env = {
                    "MMSRAREC_CACHE_DIR": str(tmp / f"cache-{n}"),
                    "MMSRAREC_EMBEDDING_MODEL": encoder,
                    "MMSRAREC_THREADS": "1",
                }
                servers.append(ServeProcess(env, args))
            else:
                env = {
                    "MMSRAREC_DATA_DIR": str(tmp / "data"),
                    "MMSRAREC_DATASET": folder.name,
                    "MMSRAREC_CACHE_DIR": str(tmp / "cache"),
                    "MMSRAREC_TEST_ENCODER": encoder,
                    "MMSRAREC_DATABASE_URL": database_url,
                    "MMSRAREC_CHROMA_URL": chroma.url,
                    "MMSRAREC_RUN_DIR": str(tmp / f"runs-{n}"),
                }
                servers.append(AppServer(env))
        urls = [server.url for server in servers]
        run_session(urls, sessions, 1)  # warm-up (first graph runs), not counted
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda s: run_session(urls, s, turns), range(sessions)))
        seconds = time.perf_counter() - started
        latencies = [x for r in results for x in r["latencies"]]
        return {
            "app": app,
            "replicas": n_replicas,
            "sessions": sessions,
            "turns": turns,
            "clients": workers,
            "requests": sessions * turns,
            "ok": sum(len(r["sent"]) for r in results),
            "errors": sum(len(r["errors"]) for r in results),
            "lost_turns": lost_turns(urls[-1], results),
            "seconds": round(seconds, 2),
            "requests_per_s": round(len(latencies) / seconds, 2),
            "p50_s": round(float(np.percentile(latencies, 50)), 3),
            "p95_s": round(float(np.percentile(latencies, 95)), 3),
        }
    finally:
        for server in servers:
            server.stop()
        chroma.stop()
        postgres.close()


def write(rows: list[dict]) -> None:
    (HERE / "replicas.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        "# Replica benchmark (loopback)",
        "",
        "`python benchmarks/replicas.py --app serve scripted --replicas 1 2 --sessions 16 "
        "--turns 4`;",
        "see the module docstring. `serve`: `mmsrarec serve` with tiny local models (2-layer LM,",
        "no critic, item-kNN ranker, 2 similar users from the Chroma server); `scripted`: the",
        "same wiring with scripted parts (no LLM). One PostgreSQL and one Chroma server; with 2",
        "replicas every turn of a conversation goes to the other replica. Graph runs are",
        "serialised within a replica, so a second replica adds a second run queue.",
        "",
        "| app | replicas | sessions x turns | clients | ok / requests | errors | lost turns "
        "| req/s | p50 (s) | p95 (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['app']} | {r['replicas']} | {r['sessions']} x {r['turns']} | {r['clients']} "
            f"| {r['ok']} / {r['requests']} | {r['errors']} | {r['lost_turns']} "
            f"| {r['requests_per_s']} | {r['p50_s']} | {r['p95_s']} |"
        )
    load = os.getloadavg()[0]
    lines += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs (load "
        f"average {load:.1f} when written), Python {platform.python_version()}.",
        "",
        "What the numbers show is correctness under hopping (0 errors, 0 lost turns), not",
        "scaling: both replicas share the same 2 busy cores, so a second one adds no CPU. In the",
        "`serve` rows each replica has its own cache dir, as on separate machines, so each",
        "summarizes items with its LM before its keyword cache is warm: with every turn on the",
        "other replica, that work is done twice, and the two processes compete for the cores.",
        "Throughput grows with replicas only where each gets its own cores.",
        "",
    ]
    (HERE / "REPLICAS.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", nargs="+", choices=["serve", "scripted"], default=["serve"])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8, help="Concurrent client threads.")
    args = parser.parse_args()
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    rows = [
        measure(app, n, args.sessions, args.turns, args.clients)
        for app in args.app
        for n in args.replicas
    ]
    for row in rows:
        print(json.dumps(row))
    write(rows)


if __name__ == "__main__":
    main()
