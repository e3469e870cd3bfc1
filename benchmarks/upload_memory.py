"""Server memory under a 300 MB chunked upload to `POST /api/chat` (no Content-Length).

    python benchmarks/upload_memory.py --label after
    git archive 4eb1684 | tar -x -C /tmp/mmsrarec-before   # the code before the byte limit
    cp tests/serve_tiny.py /tmp/mmsrarec-before/tests/
    python benchmarks/upload_memory.py --label before --root /tmp/mmsrarec-before

Serves the tests' scripted chat (`tests/serve_tiny.py`, tiny models: the body limit does not
depend on the models) from `--root` as its own process, warms it with one turn, then streams
`--megabytes` of 64 KiB chunks until done or the server stops reading. The server's RSS is
sampled every 20 ms (psutil). Writes `upload_memory.json` (one entry per label) and `UPLOAD.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"


def prepare(tmp: Path) -> tuple[Path, Path]:
    """The tiny dataset and encoder (the tests' fixtures), built in `tmp`."""
    sys.path.insert(0, str(TESTS))
    from conftest import write_tiny_jsonl
    from tiny_models import build_tiny_encoder

    from mmsrarec.data import prepare_dataset

    folder, _ = prepare_dataset(write_tiny_jsonl(tmp / "tiny"), tmp / "data", negatives=5)
    return folder, build_tiny_encoder(tmp / "encoder")


def upload(port: int, token: str, megabytes: int) -> tuple[int, bytes]:
    """Stream `megabytes` MB as a chunked body; the bytes sent before the server stopped
    reading, and its answer."""
    chunk, sent = b"x" * 65536, 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"X-Session-Token: {token}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            while sent < megabytes * 1_000_000:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        answer = b""
        try:
            while part := sock.recv(65536):
                answer += part
                if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                    break
        except OSError:
            pass
    return sent, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="after")
    parser.add_argument("--root", type=Path, default=HERE.parent, help="Code under test.")
    parser.add_argument("--megabytes", type=int, default=300)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mmsrarec-upload-"))
    data, encoder = prepare(tmp)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = args.root.resolve()
    env = {
        **os.environ,
        "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}",
        "OMP_NUM_THREADS": "1",
    }
    server = subprocess.Popen(
        [sys.executable, str(root / "tests" / "serve_tiny.py"), "--data", str(data)]
        + ["--encoder", str(encoder), "--chroma", str(tmp / "chroma"), "--port", str(port)],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        token = httpx.post(f"{base}/api/session").json()["session"]
        warm = httpx.post(
            f"{base}/api/chat",
            json={"message": "loved Movie 3"},
            headers={"X-Session-Token": token},
        )
        assert warm.status_code == 200, warm.text
        process = psutil.Process(server.pid)
        before = process.memory_info().rss
        peak, done = before, threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, process.memory_info().rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        sent, answer = upload(port, token, args.megabytes)
        seconds = time.perf_counter() - started
        time.sleep(2)
        done.set()
        sampler.join()
        after = process.memory_info().rss
        alive = httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    head, _, body = answer.partition(b"\r\n\r\n")
    mib = 1 << 20
    report = {
        "label": args.label,
        "offered_mb": args.megabytes,
        "sent_before_refused_mb": round(sent / 1e6, 2),
        "status_line": head.split(b"\r\n")[0].decode(errors="replace"),
        "answer": body[body.find(b"{") :][:120].decode(errors="replace"),
        "seconds": round(seconds, 2),
        "rss_before_mib": round(before / mib, 1),
        "rss_peak_mib": round(peak / mib, 1),
        "rss_2s_after_mib": round(after / mib, 1),
        "peak_growth_mib": round((peak - before) / mib, 1),
        "server_alive_after": alive,
    }
    print(json.dumps(report, indent=1))
    path = HERE / "upload_memory.json"
    runs = json.loads(path.read_text()) if path.exists() else {}
    runs[args.label] = report
    path.write_text(json.dumps(runs, indent=1) + "\n")
    write_markdown(runs)


def write_markdown(runs: dict) -> None:
    lines = [
        "# Server memory under a chunked upload",
        "",
        "`python benchmarks/upload_memory.py --label after` (and `--label before --root DIR` for",
        "the code before the byte-stream limit); see the module docstring.",
        "",
        "| code | offered | answer | server RSS before | peak | 2 s after | peak growth |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs.values():
        lines.append(
            f"| {r['label']} | {r['offered_mb']} MB chunked | {r['status_line'][9:]} "
            f"| {r['rss_before_mib']} MiB | {r['rss_peak_mib']} MiB | {r['rss_2s_after_mib']} MiB "
            f"| {r['peak_growth_mib']} MiB |"
        )
    lines += [
        "",
        "Before, the body limit trusted `Content-Length`: the server buffered the whole chunked",
        "body, then failed to parse it, and kept the memory. After, `web.limits.BodyLimit`",
        "counts bytes as they arrive and answers 413 past 64 KiB; uvicorn reads and drops the",
        "rest of the stream, so the client could still send all of it, without any growth.",
    ]
    (HERE / "UPLOAD.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
