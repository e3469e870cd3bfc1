"""Load benchmark of the web app on loopback: N concurrent chat sessions, bounded in count and
time. Reports throughput, p50/p95 latency, errors, and checks that no answer leaks across
sessions (each session's thread ids and trace messages are its own; other sessions get 404).

    # against a running `mmsrarec serve` (the packaged models):
    python benchmarks/load.py --url http://127.0.0.1:8000 --sessions 4 --turns 2
    # self-hosted app with the tests' scripted parts (web + graph + checkpointer overhead):
    python benchmarks/load.py --scripted --sessions 16 --turns 3

Writes `benchmarks/load_results.json` and `.md` (one entry per mode, replaced on rerun).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx

HERE = Path(__file__).resolve().parent
ML_TITLES = ["Star Wars", "Fargo", "Toy Story", "Titanic", "Contact", "Scream", "Casablanca",
             "Braveheart", "Twister", "Jaws", "Aliens", "Vertigo"]  # fmt: skip
WANTS = ["something tense", "a funny one", "something romantic", "an adventure"]


def messages(session: int, turns: int, scripted: bool) -> list[str]:
    """Distinct messages per session, so that a leaked answer would show."""
    out = []
    for turn in range(turns):
        if scripted:
            title = f"Movie {1 + (session * 3 + turn) % 40}"
        else:
            title = ML_TITLES[(session + turn * 5) % len(ML_TITLES)]
        out.append(f"loved {title}, want {WANTS[(session + turn) % len(WANTS)]} #s{session}t{turn}")
    return out


def run_session(url: str, session: int, turns: int, scripted: bool, deadline: float) -> dict:
    """One user: a session token, `turns` messages on one thread, then its trace."""
    result = {"latencies": [], "errors": [], "threads": set(), "sent": [], "token": None}
    with httpx.Client(base_url=url, timeout=max(1.0, deadline - time.monotonic())) as client:
        result["token"] = client.post("/api/session").json()["session"]
        headers = {"X-Session-Token": result["token"]}
        thread = None
        for text in messages(session, turns, scripted):
            if time.monotonic() > deadline:
                result["errors"].append("deadline")
                break
            started = time.perf_counter()
            try:
                answer = client.post(
                    "/api/chat", json={"message": text, "thread_id": thread}, headers=headers
                )
            except httpx.HTTPError as exc:
                result["errors"].append(type(exc).__name__)
                continue
            result["latencies"].append(time.perf_counter() - started)
            if answer.status_code != 200:
                result["errors"].append(f"HTTP {answer.status_code}")
                continue
            thread = answer.json()["thread_id"]
            result["threads"].add(thread)
            result["sent"].append(text)
        if thread is not None:
            trace = client.get(f"/api/traces/{thread}", headers=headers).json()
            result["seen"] = [t["message"] for t in trace["turns"]]
    return result


def check_isolation(url: str, results: list[dict]) -> list[str]:
    """Leaks: a session whose trace holds another's message, or that can read another's
    thread (every cross-session read must be a 404)."""
    leaks = []
    for n, result in enumerate(results):
        if result.get("seen", result["sent"]) != result["sent"]:
            leaks.append(f"session {n} trace holds messages it did not send")
    owners = {t: n for n, r in enumerate(results) for t in r["threads"]}
    if len(owners) != sum(len(r["threads"]) for r in results):
        leaks.append("two sessions were given the same thread id")
    with httpx.Client(base_url=url, timeout=30) as client:
        for n, result in enumerate(results):
            other = results[(n + 1) % len(results)]
            for thread in other["threads"] if other is not result else ():
                status = client.get(
                    f"/api/traces/{thread}", headers={"X-Session-Token": result["token"]}
                ).status_code
                if status != 404:
                    leaks.append(f"session {n} read thread of another session: HTTP {status}")
    return leaks


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def serve_scripted() -> tuple[str, object]:
    """The app with the tests' scripted parts on the tiny dataset, on a free loopback port."""
    import socket

    import uvicorn

    sys.path.insert(0, str(HERE.parent / "tests"))
    from chat_fakes import make_chat_service
    from conftest import write_tiny_jsonl
    from tiny_models import build_tiny_encoder

    from mmsrarec.config import Settings
    from mmsrarec.data import load_dataset, prepare_dataset
    from mmsrarec.models import load_encoder
    from mmsrarec.web.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="mmsrarec-load-"))
    folder, _ = prepare_dataset(write_tiny_jsonl(tmp / "tiny"), tmp / "data", negatives=5)
    settings = Settings(cache_dir=tmp / "cache", offline=True)
    encoder = load_encoder(str(build_tiny_encoder(tmp / "encoder")), settings)
    app = create_app(make_chat_service(load_dataset(folder), encoder))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="A running server on loopback (default: self-host).")
    parser.add_argument("--scripted", action="store_true", help="Self-host with scripted parts.")
    parser.add_argument("--sessions", type=int, default=8, help="Concurrent sessions (<= 64).")
    parser.add_argument("--turns", type=int, default=3, help="Messages per session (<= 10).")
    parser.add_argument("--budget", type=float, default=300.0, help="Seconds at most (<= 900).")
    args = parser.parse_args()
    if not (1 <= args.sessions <= 64 and 1 <= args.turns <= 10 and 0 < args.budget <= 900):
        parser.error("bounds: 1-64 sessions, 1-10 turns, budget up to 900 s")
    if bool(args.url) == args.scripted:
        parser.error("give exactly one of --url and --scripted")
    server = None
    url = args.url
    if args.scripted:
        url, server = serve_scripted()
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark runs on loopback only")
    started = time.perf_counter()
    deadline = time.monotonic() + args.budget
    with ThreadPoolExecutor(args.sessions) as pool:
        futures = [
            pool.submit(run_session, url, n, args.turns, args.scripted, deadline)
            for n in range(args.sessions)
        ]
        results = [f.result() for f in futures]
    wall = time.perf_counter() - started
    latencies = [x for r in results for x in r["latencies"]]
    errors = [e for r in results for e in r["errors"]]
    leaks = check_isolation(url, results)
    if server is not None:
        server.should_exit = True
    ok = len(latencies) - sum(e.startswith("HTTP") for e in errors)
    mode = "scripted" if args.scripted else "packaged-models"
    report = {
        "mode": mode,
        "sessions": args.sessions,
        "turns": args.turns,
        "requests": len(latencies),
        "ok": ok,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "wall_s": round(wall, 2),
        "throughput_rps": round(ok / wall, 3),
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 3),
        "max_s": round(max(latencies), 3) if latencies else None,
        "leaks": leaks,
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
    }
    print(json.dumps(report, indent=2))
    write_results(report)
    sys.exit(1 if leaks else 0)


def write_results(report: dict) -> None:
    path = HERE / "load_results.json"
    all_runs = json.loads(path.read_text()) if path.exists() else {}
    all_runs[report["mode"]] = report
    path.write_text(json.dumps(all_runs, indent=2) + "\n")
    lines = [
        "# Load benchmark (loopback)",
        "",
        "`python benchmarks/load.py ...`; see the module docstring. Turns run in the app's",
        "bounded pool (`server.turn_workers` at once); rows measured before the pool ran every",
        "turn under one lock (before/after: CONCURRENCY.md).",
        "",
        "| mode | sessions x turns | ok / requests | errors | throughput (req/s) "
        "| p50 (s) | p95 (s) | leaks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in all_runs.values():
        lines.append(
            f"| {r['mode']} | {r['sessions']} x {r['turns']} | {r['ok']} / {r['requests']} "
            f"| {r['errors']} | {r['throughput_rps']} | {r['p50_s']} | {r['p95_s']} "
            f"| {len(r['leaks'])} |"
        )
    lines += ["", f"Machine: {report['machine']}.", ""]
    (HERE / "load_results.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
