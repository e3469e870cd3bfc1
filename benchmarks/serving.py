"""Load and latency of the recommendation API on loopback: `mmsrarec serve` started here,
clients in this process (asyncio + httpx), each phase bounded in time.

    python benchmarks/serving.py                 # the table of benchmarks/SERVING.md
    python benchmarks/serving.py --seconds 10 --clients 1,8

1. `--scorer` (default: the served default, `mmsrarec`, on the packaged SmolLM2; its
   trained models are read from `--models`, default `runs`): at each client count,
   `GET /api/recommend/{user}` (a random ML-100K user, whole catalogue, full history),
   `POST /api/recommend` (a random 5-item history), and a mix of the two with 10 %
   `POST /api/feedback` writes; all of it once per `--evidence-windows` value (the cited
   history's depth each request asks for: the server's default, then 0 = none).
2. The swap: `--swap-scorer` (default `item-knn`: its retraining takes seconds, where the
   fused LLM system's takes most of an hour on this CPU) serves the mix at 8 clients while
   `mmsrarec train --from-store` retrains it on the feedback so far, and for
   `--swap-seconds` after, while the server swaps the new version in. Counted: errors,
   answers per model version, and the writes: every feedback answered 201 must be in the
   store exactly once (each carries an idempotency key; a failed write is retried with the
   same key).

Each phase runs in a fresh run dir (`benchmarks/serving/run-*`, the trained models linked in)
so that no live data is left in `runs/`. Writes `benchmarks/serving/results.json` and
`benchmarks/SERVING.md`, with `uptime`'s load average before and after each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "serving"
KEY = "bench-key"
DEFAULT = "default"  # the server's evidence window
AUTH = {"Authorization": f"Bearer {KEY}"}
sys.path.insert(0, str(ROOT / "tests"))


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Server:
    """`mmsrarec serve` on a free port with its own run dir (trained models linked in)."""

    def __init__(self, name: str, scorer: str, models: Path, k_similar: int) -> None:
        from services import free_port, wait_http

        self.run_dir = OUT / f"run-{name}"
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        for part in ("sasrec", "llm-recommender", "item-knn"):
            if (models / part).exists():
                (self.run_dir / part).symlink_to((models / part).resolve())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = OUT / f"server-{name}.log"
        self.env = {
            **os.environ,
            # keywords come from `mmsrarec summarize`, not from a worker thread competing
            # with the requests for the 2 cores (the LLM is not run while serving)
            "MMSRAREC_SERVER": json.dumps({"background_keywords": False}),
            "MMSRAREC_API_KEY": KEY,
            "MMSRAREC_RUN_DIR": str(self.run_dir),
            "MMSRAREC_THREADS": "1",
        }
        entry = "from mmsrarec.cli import main; raise SystemExit(main())"
        command = [
            sys.executable,
            "-c",
            entry,
            "serve",
            "--port",
            str(self.port),
            "--scorer",
            scorer,
            "--k-similar",
            str(k_similar),
        ]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        wait_http(f"{self.url}/healthz", timeout=3600, process=self.process, log=self.log)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        import psutil

        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(30)


class Load:
    """Clients looping over requests for `seconds`; latencies per operation."""

    def __init__(
        self, url: str, users: list[str], items: list[str], seed: int | str = 0,
        evidence_window: int | None = None,
    ) -> None:  # fmt: skip
        self.url, self.users, self.items = url, users, items
        # the cited history's depth asked per request (None: the server's default)
        self.asked = {} if evidence_window is None else {"evidence_window": evidence_window}
        self.random = random.Random(seed)
        self.samples: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.versions: dict[str, int] = {}
        self.written: dict[str, int] = {}  # idempotency key -> seq answered

    async def one(self, client: httpx.AsyncClient, op: str) -> None:
        pick = self.random
        if op == "get":
            user = pick.choice(self.users)
            call = client.get(f"/api/recommend/{user}", params=self.asked, headers=AUTH)
        elif op == "post":
            body = {"history": pick.sample(self.items, 5), **self.asked}
            call = client.post("/api/recommend", json=body)
        else:
            key = f"fb-{pick.getrandbits(64):016x}"
            event = {
                "user_id": pick.choice(self.users),
                "item_id": pick.choice(self.items),
                "timestamp": time.time(),
            }
            call = self.write(client, event, key)
        started = time.perf_counter()
        try:
            answer = await call
        except httpx.HTTPError as exc:
            self.errors.append(f"{op}: {type(exc).__name__}")
            return
        seconds = time.perf_counter() - started
        if answer.status_code not in (200, 201):
            self.errors.append(f"{op}: {answer.status_code} {answer.text[:120]}")
            return
        self.samples.setdefault(op, []).append(seconds)
        body = answer.json()
        if op == "feedback":
            self.written[key] = body["seq"]
        else:
            self.versions[body["model_version"]] = self.versions.get(body["model_version"], 0) + 1

    async def write(self, client, event, key, tries: int = 5) -> httpx.Response:
        """A feedback write, retried with the same key (a retry never doubles a row)."""
        for attempt in range(tries):
            try:
                return await client.post(
                    "/api/feedback", json=event, headers={**AUTH, "Idempotency-Key": key}
                )
            except httpx.TransportError:
                if attempt == tries - 1:
                    raise
                await asyncio.sleep(0.1)
        raise AssertionError("unreachable")

    async def run(self, clients: int, seconds: float, mix: dict[str, float]) -> float:
        """Loop for `seconds` (`self.deadline` may be moved meanwhile); the time it took."""
        ops, weights = list(mix), list(mix.values())
        self.deadline = time.perf_counter() + seconds
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=self.url, timeout=120, limits=limits) as client:

            async def worker() -> None:
                while time.perf_counter() < self.deadline:
                    await self.one(client, self.random.choices(ops, weights)[0])

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            return time.perf_counter() - started


def summary(load: Load, elapsed: float, **labels) -> list[dict]:
    rows = []
    for op, values in sorted(load.samples.items()):
        rows.append(
            {
                **labels,
                "op": op,
                "n": len(values),
                "p50_ms": round(1000 * percentile(values, 0.50), 1),
                "p95_ms": round(1000 * percentile(values, 0.95), 1),
                "p99_ms": round(1000 * percentile(values, 0.99), 1),
                "throughput_rps": round(len(values) / elapsed, 2),
            }
        )
    total = sum(len(v) for v in load.samples.values())
    rows.append(
        {
            **labels,
            "op": "all",
            "n": total,
            "errors": len(load.errors),
            "error_samples": load.errors[:3],
            "throughput_rps": round(total / elapsed, 2),
            "versions": load.versions,
        }
    )
    return rows


def catalogue() -> tuple[list[str], list[str]]:
    from mmsrarec.config import load_settings
    from mmsrarec.data import load_dataset

    dataset = load_dataset(load_settings().dataset_dir)
    return list(dataset.users), [item.item_id for item in dataset.items]


def latency_phase(args, users, items) -> list[dict]:
    rows = []
    server = Server("latency", args.scorer, args.models, args.k_similar)
    try:
        warm = Load(server.url, users, items, seed=1)
        asyncio.run(warm.run(2, 10, {"get": 1, "post": 1}))  # first calls load lazily
        mixes = {
            "get": {"get": 1.0},
            "post": {"post": 1.0},
            "mixed": {"get": 0.45, "post": 0.45, "feedback": 0.10},
        }
        for window in args.evidence_windows:
            for clients in args.clients:
                for name, mix in mixes.items():
                    before, cpu = load_average(), server.cpu_seconds()
                    load = Load(server.url, users, items, f"{clients}-{window}", window)  # own keys
                    elapsed = asyncio.run(load.run(clients, args.seconds, mix))
                    cpu = server.cpu_seconds() - cpu
                    rows += summary(load, elapsed, phase="latency", scorer=args.scorer,
                                    evidence=DEFAULT if window is None else window,
                                    clients=clients, mix=name, load_before=before,
                                    load_after=load_average())  # fmt: skip
                    n = max(1, rows[-1]["n"])
                    rows[-1]["server_cpu_ms_per_request"] = round(1000 * cpu / n, 1)
                    print(json.dumps(rows[-1]), flush=True)
    finally:
        server.close()
    return rows


def swap_phase(args, users, items) -> list[dict]:
    from mmsrarec.config import load_settings
    from mmsrarec.database import open_tables
    from mmsrarec.serving import LiveStore

    server = Server("swap", args.swap_scorer, args.models, args.k_similar)
    before = load_average()
    load = Load(server.url, users, items, seed=99)
    mix = {"get": 0.45, "post": 0.45, "feedback": 0.10}
    try:
        asyncio.run(load.run(8, 5, mix))  # feedback to retrain on

        async def with_retrain() -> tuple[float, float]:
            entry = "from mmsrarec.cli import main; raise SystemExit(main())"
            command = [
                sys.executable,
                "-c",
                entry,
                "train",
                "--from-store",
                "--scorer",
                args.swap_scorer,
            ]
            started = time.perf_counter()
            child = await asyncio.create_subprocess_exec(*command, env=server.env)
            running = asyncio.ensure_future(load.run(8, 3600, mix))
            code = await child.wait()
            retrain_s = time.perf_counter() - started
            load.deadline = time.perf_counter() + args.swap_seconds  # the swap, and after
            assert code == 0, f"retraining failed ({code})"
            return await running, retrain_s

        elapsed, retrain_s = asyncio.run(with_retrain())
    finally:
        server.close()
    settings = load_settings(run_dir=server.run_dir)
    stored = LiveStore(open_tables(settings, "recommend")).feedback()
    keys = open_tables(settings, "recommend").run("SELECT idempotency_key, seq FROM live_feedback")
    answered = dict(load.written)
    in_store = {key: seq for key, seq in keys}
    rows = summary(
        load,
        elapsed,
        phase="swap",
        scorer=args.swap_scorer,
        clients=8,
        mix="mixed",
        load_before=before,
        load_after=load_average(),
    )
    rows[-1].update(
        {
            "retrain_seconds": round(retrain_s, 1),
            "writes_answered": len(answered),
            "writes_stored": len(stored),
            "lost_writes": sum(1 for key, seq in answered.items() if in_store.get(key) != seq),
            "doubled_writes": len(stored) - len(set(in_store)),
        }
    )
    print(json.dumps(rows[-1]), flush=True)
    return rows


def report(rows: list[dict], args) -> str:
    lines = [
        "# Recommendation API: load and latency",
        "",
        f"`python benchmarks/serving.py --seconds {args.seconds:g} --clients "
        f"{','.join(map(str, args.clients))} --evidence-windows {windows(args)}` on "
        f"{platform.machine()}, "
        f"{os.cpu_count()} cores **shared with other jobs** (load averages below, 1/5/15 min), "
        f"server and clients on loopback at niceness {os.nice(0)}, `MMSRAREC_THREADS=1`, "
        "keywords not written while serving (`background_keywords` off). Wall-clock latency "
        "here is bound by the other jobs' load; the server's CPU time per request is what a "
        "request costs. `evidence`: the cited history's depth each recommendation request "
        f"asked for (`{DEFAULT}`: the server's `evidence_window`, the last 50 history items, "
        "screened; 0: none, the parts of each score and the supporting words only). "
        "Results: [`serving/results.json`](serving/results.json).",
        "",
        "| phase | scorer | evidence | clients | mix | op | n | p50 ms | p95 ms | p99 ms | "
        "req/s | load before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["op"] == "all":
            continue
        lines.append(
            f"| {row['phase']} | {row['scorer']} | {row.get('evidence', DEFAULT)} | "
            f"{row['clients']} | {row['mix']} | {row['op']} | {row['n']} | {row['p50_ms']} | "
            f"{row['p95_ms']} | {row['p99_ms']} | "
            f"{row['throughput_rps']} | {row['load_before']} → {row['load_after']} |"
        )
    lines += [
        "",
        "| phase | evidence | clients | mix | requests | errors | req/s | "
        "server CPU ms/request | model versions seen |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["op"] == "all":
            lines.append(
                f"| {row['phase']} | {row.get('evidence', DEFAULT)} | {row['clients']} | "
                f"{row['mix']} | {row['n']} | "
                f"{row['errors']} | {row['throughput_rps']} | "
                f"{row.get('server_cpu_ms_per_request', '')} | {row['versions']} |"
            )
    for evidence in dict.fromkeys(
        r.get("evidence", DEFAULT) for r in rows if r["phase"] == "latency"
    ):
        lines += [
            "",
            *targets([r for r in rows if r.get("evidence", DEFAULT) == evidence], evidence),
        ]
    lines += compared([r for r in rows if r.get("evidence", DEFAULT) == 0])
    swap = next((r for r in rows if r["phase"] == "swap" and r["op"] == "all"), None)
    if swap:
        lines += [
            "",
            f"Swap: retraining took {swap['retrain_seconds']} s; "
            f"{swap['writes_answered']} feedback writes answered 201, "
            f"{swap['writes_stored']} rows stored, {swap['lost_writes']} lost, "
            f"{swap['doubled_writes']} doubled; {swap['errors']} errors.",
        ]
    return "\n".join(lines) + "\n"


def windows(args) -> str:
    return ",".join(DEFAULT if w is None else str(w) for w in args.evidence_windows)


def compared(rows: list[dict]) -> list[str]:
    """This run's rows without the cited history beside the run before continuous batching
    (`serving/results-unbatched.json`, the same command at commit 3cc60cc, when there was no
    cited history), where that file is kept."""
    path = OUT / "results-unbatched.json"
    if not path.exists():
        return []

    def index(found: list[dict]) -> dict[tuple, dict]:
        return {(r["clients"], r["mix"], r["op"]): r for r in found if r["phase"] == "latency"}

    old, new = index(json.loads(path.read_text())), index(rows)
    cpu = "server_cpu_ms_per_request"
    lines = [
        "",
        "Before continuous batching (the same command at commit 3cc60cc, when answers had no "
        "cited history) → this run's `evidence` 0. The "
        "wall times moved with the machine's load as much as with the change (one client, "
        "which cannot batch, moved too); the server's CPU time per request is the comparable "
        "figure:",
        "",
        "| clients | requests | p50 ms | req/s | server CPU ms/request |",
        "|---|---|---|---|---|",
    ]
    for clients, mix, op in new:
        if op != mix or mix == "mixed" or (clients, mix, op) not in old:
            continue
        a, b = old[(clients, mix, "all")], new[(clients, mix, "all")]
        p50 = f"{old[(clients, mix, op)]['p50_ms']} → {new[(clients, mix, op)]['p50_ms']}"
        lines.append(
            f"| {clients} | {mix} | {p50} | {a['throughput_rps']} → {b['throughput_rps']} | "
            f"{a.get(cpu)} → {b.get(cpu)} |"
        )
    return lines


def targets(rows: list[dict], evidence: object) -> list[str]:
    """The issue's numbers against what was measured (`rows` of one evidence depth)."""
    get8 = next(
        (
            r
            for r in rows
            if r["phase"] == "latency"
            and r["clients"] == 8
            and r["mix"] == "get"
            and r["op"] == "get"
        ),
        None,
    )
    all8 = next(
        (
            r
            for r in rows
            if r["phase"] == "latency"
            and r["clients"] == 8
            and r["mix"] == "get"
            and r["op"] == "all"
        ),
        None,
    )
    if get8 is None or all8 is None:
        return []
    cpu = all8.get("server_cpu_ms_per_request")
    lines = [
        f"Targets, `GET /api/recommend` at 8 clients over the whole catalogue, evidence "
        f"`{evidence}`: p50 <= 50 ms "
        f"({'holds' if get8['p50_ms'] <= 50 else 'does not hold'}: {get8['p50_ms']} ms), "
        f"p99 <= 300 ms ({'holds' if get8['p99_ms'] <= 300 else 'does not hold'}: "
        f"{get8['p99_ms']} ms)."
    ]
    if cpu:
        lines.append(
            f"A request costs the server {cpu} ms of CPU, so 2 idle cores answer at most "
            f"{2000 / cpu:.0f} requests/s; 8 clients with no think time then wait at least "
            f"{8 * cpu / 2:.0f} ms per request, whatever else runs on the machine."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scorer", default="mmsrarec")
    parser.add_argument("--swap-scorer", default="item-knn")
    parser.add_argument("--models", type=Path, default=ROOT / "runs")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--swap-seconds",
        type=float,
        default=20,
        help="Load after the retraining ends (the swap lands in it).",
    )
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument(
        "--evidence-windows",
        default=f"{DEFAULT},0",
        help="The cited history's depth asked per request, each a run of the latency phase: "
        f"`{DEFAULT}` (the server's, 50 items) and/or a number (0: no cited history).",
    )
    parser.add_argument("--k-similar", type=int, default=3, help="Similar users (serve's).")
    parser.add_argument("--skip", default="", help="`latency` and/or `swap`")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="Write SERVING.md again from serving/results.json.",
    )
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    args.evidence_windows = [None if w == DEFAULT else int(w)
                             for w in args.evidence_windows.split(",")]  # fmt: skip
    os.environ.setdefault("MMSRAREC_THREADS", "1")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        rows = json.loads((OUT / "results.json").read_text())
        (HERE / "SERVING.md").write_text(report(rows, args))
        return
    users, items = catalogue()
    rows = []
    if "latency" not in args.skip:
        rows += latency_phase(args, users, items)
    if "swap" not in args.skip:
        rows += swap_phase(args, users, items)
    (OUT / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    (HERE / "SERVING.md").write_text(report(rows, args))
    print(report(rows, args))


if __name__ == "__main__":
    main()
