"""Two real processes share one catalog index: a second `mmsrarec` process that builds the
index with other keywords updates it in place, and the running server keeps answering."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent

BUILD_WITH_KEYWORDS = """
import sys, chromadb
from pathlib import Path
from chromadb.config import Settings as ChromaSettings
from mmsrarec.chat.catalog import CatalogIndex
from mmsrarec.config import Settings
from mmsrarec.data import load_dataset
from mmsrarec.models import ChromaEmbedding, load_encoder
data, encoder_dir, chroma = sys.argv[1:4]
client = chromadb.PersistentClient(chroma, settings=ChromaSettings(anonymized_telemetry=False))
encoder = load_encoder(encoder_dir, Settings(cache_dir=chroma + "-cache"))
index = CatalogIndex.build(
    client, load_dataset(Path(data)), {"m7": ["laser", "moon"]}, ChromaEmbedding(encoder)
)
print(index.collection.get(ids=["m7"], include=["documents"])["documents"][0])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def wait_healthy(base: str, server: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError("server did not start")


@pytest.fixture
def tiny_server(tiny_dataset, tiny_encoder_dir, tmp_path):
    """A server process on the tiny chat, its catalog index in `tmp_path/chroma`."""
    port, chroma = free_port(), tmp_path / "chroma"
    server = subprocess.Popen(
        [
            sys.executable,
            str(TESTS / "serve_tiny.py"),
            "--data",
            str(tmp_path / "data" / tiny_dataset.name),
        ]
        + ["--encoder", str(tiny_encoder_dir), "--chroma", str(chroma), "--port", str(port)],
        env=env(),
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, server)
        yield base, chroma
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_another_process_building_the_index_does_not_break_a_running_server(
    tiny_server, tiny_dataset, tiny_encoder_dir, tmp_path
):
    base, chroma = tiny_server
    with httpx.Client(base_url=base, timeout=60) as http:
        first = http.post("/api/chat", json={"message": "a space opera film"})
        assert first.status_code == 200, first.text
        thread = first.json()["thread_id"]
        assert first.json()["matches"], "the turn searched the catalog index"
        other = subprocess.run(
            [sys.executable, "-c", BUILD_WITH_KEYWORDS, str(tmp_path / "data" / tiny_dataset.name)]
            + [str(tiny_encoder_dir), str(chroma)],
            env=env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert other.returncode == 0, other.stderr[-2000:]
        assert other.stdout.strip().endswith("Keywords: laser, moon.")  # the index was updated
        for body in (
            {"message": "a space opera film"},
            {"message": "space opera, please", "thread_id": thread},
        ):
            again = http.post("/api/chat", json=body)
            assert again.status_code == 200, again.text
            assert again.json()["matches"], (body, again.json()["reply"])
