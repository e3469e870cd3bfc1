"""Real engines started for the tests on loopback: PostgreSQL (Debian's `postgresql`
package: `initdb` + `pg_ctl` in a temporary folder) and a Chroma server (`chroma run`
from the pinned `chromadb`). Each helper says why it cannot start, for a one-line skip."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(
    url: str,
    timeout: float = 60,
    process: subprocess.Popen | None = None,
    log: Path | None = None,
) -> None:
    """Until `url` answers 200 (or `process` exits, or `timeout`); the error ends with the
    tail of `log`, the process's output, when given."""

    def tail() -> str:
        return f": {log.read_text(errors='replace')[-3000:]}" if log is not None else ""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}{tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s{tail()}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- PostgreSQL -------------------------------------------------------------------------------


def postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def postgres_missing() -> str | None:
    """Why PostgreSQL cannot start here, or None."""
    if postgres_bin("initdb") is None or postgres_bin("pg_ctl") is None:
        return "PostgreSQL not installed: apt-get install postgresql"
    try:
        import langgraph.checkpoint.postgres  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg / langgraph-checkpoint-postgres missing: pip install -e '.[postgres]'"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without `runuser` to start PostgreSQL as another user"
    return None


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, user `mmsrarec`). As root
    (CI), it runs as the `postgres` user the Debian package creates."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mmsrarec-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(postgres_bin("initdb"), "-D", str(self.data), "-U", "mmsrarec",
                  "--auth=trust", "-E", "UTF8", "--no-sync")  # fmt: skip
        self.start()

    def _run(self, *args: str | None) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.folder / "log"), "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://mmsrarec@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


# --- Chroma server ----------------------------------------------------------------------------


def chroma_missing() -> str | None:
    if not (VENV_BIN / "chroma").exists() and shutil.which("chroma") is None:
        return "the `chroma` CLI (package chromadb) is not on this Python's PATH"
    return None


class ChromaServer:
    """`chroma run --path DIR --host 127.0.0.1 --port P` as a subprocess; restartable on the
    same folder and port."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        chroma = str(VENV_BIN / "chroma") if (VENV_BIN / "chroma").exists() else "chroma"
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        self.process = subprocess.Popen(
            [chroma, "run", "--path", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        wait_http(f"{self.url}/api/v2/heartbeat", process=self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


# --- The web app in its own process (tests/fake_server.py) -------------------------------------

TESTS = Path(__file__).resolve().parent


class AppServer:
    """`uvicorn --factory fake_server:app` on 127.0.0.1 (scripted parts): `env` holds its
    `MMSRAREC_*` settings. Restartable on the same port (and so the same browser origin)."""

    def __init__(
        self,
        env: dict[str, str],
        port: int | None = None,
        log: Path | None = None,
        wait: bool = True,
    ):
        self.env = env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None
        self.start(wait=wait)

    def command(self) -> list[str]:
        uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "fake_server:app"]
        return [*uvicorn, "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]

    def start(self, wait: bool = True) -> None:
        """Launch the process; with `wait`, until it answers `/healthz`."""
        path = os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, **self.env, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(), env=env, stdout=out,
            stderr=subprocess.STDOUT if self.log else subprocess.DEVNULL,
        )  # fmt: skip
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 300) -> None:
        wait_http(f"{self.url}/healthz", timeout=timeout, process=self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


class ServeProcess(AppServer):
    """`mmsrarec serve --port P ARGS...` itself (settings from `env` and `args`)."""

    def __init__(
        self, env: dict[str, str], args: list[str], log: Path | None = None, wait: bool = True
    ):
        self.args = args
        super().__init__(env, log=log, wait=wait)

    def command(self) -> list[str]:
        entry = "from mmsrarec.cli import main; raise SystemExit(main())"
        return [sys.executable, "-c", entry, "serve", "--port", str(self.port), *self.args]
