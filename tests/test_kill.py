"""kill -9 on real processes, on tiny models: SASRec training, the yes/no scorer's training,
summarization into the
keyword cache, and a served chat turn. Each rerun resumes with nothing lost or corrupted, and
every SQLite file involved passes `PRAGMA integrity_check`. (GRPO's kill test sits with the
GRPO trainer.)"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from conftest import write_tiny_jsonl

from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.web.sessions import HEADER as SESSION_HEADER

pytestmark = pytest.mark.slow
TESTS = str(Path(__file__).parent)
HEADER = "import sys, time, json, torch\ntorch.set_num_threads(1)\nsys.path.insert(0, {tests!r})\n"


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(HEADER.format(tests=TESTS) + body, encoding="utf-8")
    return path


def run(path: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def kill_when(path: Path, args: list[str], ready: Callable[[], bool], delay: float = 0.0) -> None:
    """Start the script, SIGKILL it `delay` s after `ready()` first holds (fail if it ends)."""
    process = subprocess.Popen([sys.executable, str(path), *args])
    deadline = time.monotonic() + 600
    try:
        while not ready():
            assert process.poll() is None, "the process ended before the kill"
            assert time.monotonic() < deadline, "the process never reached the kill point"
            time.sleep(0.02)
        time.sleep(delay)
        assert process.poll() is None, "the process ended before the kill"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def integrity_ok(path: Path) -> bool:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def count_rows(path: Path, table: str) -> int:
    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as db:
            return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet, or a write is under way
        return 0


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    prepare_dataset(write_tiny_jsonl(tmp_path / "src" / "tiny"), tmp_path / "data", negatives=5)
    return tmp_path / "data" / "tiny"


SASREC = """
from pathlib import Path
from mmsrarec.data import load_dataset
from mmsrarec.models.sasrec import SASRecConfig
from mmsrarec.recommenders.sasrec import SASRecRecommender
from mmsrarec.training import sasrec_trainer
real = sasrec_trainer.validation_ndcg10
def slow(*args, **kwargs):  # a slower epoch, so that the kill lands mid-run; same results
    time.sleep(0.05)
    return real(*args, **kwargs)
sasrec_trainer.validation_ndcg10 = slow
config = SASRecConfig(max_len=8, hidden=16, layers=1, heads=2, dropout=0.1, lr=1e-2,
                      batch_size=4, max_epochs=60, patience=60, eval_every=1)
SASRecRecommender(config, save_dir=Path(sys.argv[2]), progress=False).fit(
    load_dataset(Path(sys.argv[1])), 0)
"""


def test_killed_sasrec_training_resumes_to_the_uninterrupted_result(data_dir, tmp_path):
    path = script(tmp_path, "sasrec", SASREC)
    run(path, str(data_dir), str(tmp_path / "straight"))
    straight = json.loads((tmp_path / "straight" / "seed0" / "meta.json").read_text())

    folder = tmp_path / "killed" / "seed0"
    kill_when(path, [str(data_dir), str(tmp_path / "killed")],
              lambda: (folder / "training.pt").exists(), delay=0.5)  # fmt: skip
    assert not (folder / "meta.json").exists()
    run(path, str(data_dir), str(tmp_path / "killed"))
    resumed = json.loads((folder / "meta.json").read_text())
    assert resumed["log"] == straight["log"] and resumed["best_epoch"] == straight["best_epoch"]
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    assert not (folder / "training.pt").exists()


YES_NO = """
from pathlib import Path
from mmsrarec.config import Settings
from mmsrarec.data import load_dataset
from mmsrarec.recommenders.yes_no import YesNoRecommender
from mmsrarec.training import yes_no_trainer
from mmsrarec.training.yes_no_trainer import YesNoConfig
data, model, root = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
real_validation = yes_no_trainer.validation_ndcg5
def slow_validation(*args, **kwargs):  # slower evaluations, so that the kill lands mid-run
    time.sleep(0.5)
    return real_validation(*args, **kwargs)
yes_no_trainer.validation_ndcg5 = slow_validation
dataset = load_dataset(data)
settings = Settings(cache_dir=root / "cache", run_dir=root / "runs", model=model,
                    dataset=dataset.name, offline=True)
config = YesNoConfig(examples=12, batch_size=2, eval_every=2, n_valid_users=3, negatives=3,
                     k_similar=0, keywords="none", bf16=False, lora_rank=2, lr=1e-2)
recommender = YesNoRecommender(settings, config, progress=False)
recommender.fit(dataset, 0)
print(json.dumps({"folder": str(recommender.save_dir(0)), **recommender.meta}))
"""


def test_killed_yes_no_training_resumes_to_the_uninterrupted_result(
    data_dir, tiny_lm_dir, tmp_path
):
    path = script(tmp_path, "yes_no", YES_NO)
    straight = json.loads(run(path, str(data_dir), str(tiny_lm_dir), str(tmp_path / "a"))
                          .strip().splitlines()[-1])  # fmt: skip
    folder = Path(straight["folder"].replace(str(tmp_path / "a"), str(tmp_path / "b")))
    args = [str(data_dir), str(tiny_lm_dir), str(tmp_path / "b")]
    kill_when(path, args, lambda: (folder / "checkpoint.pt").exists(), delay=0.3)
    assert not (folder / "manifest.json").exists()  # killed before the end
    resumed = json.loads(run(path, *args).strip().splitlines()[-1])

    def without_times(log):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in log]

    assert without_times(resumed["log"]) == without_times(straight["log"])
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    assert (folder / "manifest.json").exists() and not (folder / "checkpoint.pt").exists()


SUMMARIZE = """
from pathlib import Path
from mmsrarec.config import Settings
from mmsrarec.data import load_dataset
from mmsrarec.models import load_llm
from mmsrarec.summarization import KeywordCache, LLMSummarizer, summarize_catalog
from mmsrarec.summarization.prompts import PROMPT_VERSION
data, model, root = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
llm = load_llm(model, Settings(cache_dir=root / "cache", offline=True))
summarizer = LLMSummarizer(llm, batch_size=2, max_new_tokens=8)
real_summarize = summarizer.summarize
def slow_summarize(*args, **kwargs):  # a slower batch, so that the kill lands mid-run
    time.sleep(0.1)
    return real_summarize(*args, **kwargs)
summarizer.summarize = slow_summarize
with KeywordCache(root / "keywords.sqlite", summarizer.name, PROMPT_VERSION) as cache:
    items = load_dataset(data).items
    print(json.dumps(summarize_catalog(items, summarizer, cache, batch_size=2, progress=False)))
"""


def test_killed_summarization_keeps_every_finished_batch(data_dir, tiny_lm_dir, tmp_path):
    path = script(tmp_path, "summarize", SUMMARIZE)
    db = tmp_path / "keywords.sqlite"
    args = [str(data_dir), str(tiny_lm_dir), str(tmp_path)]
    kill_when(path, args, lambda: count_rows(db, "keywords") >= 4)
    assert integrity_ok(db)
    kept = count_rows(db, "keywords")
    n_items = load_dataset(data_dir).n_items
    assert 4 <= kept < n_items
    stats = json.loads(run(path, *args).strip().splitlines()[-1])
    assert stats["cached"] == kept and stats["summarized"] == n_items - kept
    assert integrity_ok(db) and count_rows(db, "keywords") == n_items
    with closing(sqlite3.connect(db)) as connection:
        rows = connection.execute("SELECT keywords FROM keywords").fetchall()
    assert all(isinstance(json.loads(keywords), list) for (keywords,) in rows)


SERVE = """
from pathlib import Path
import chromadb, uvicorn
from chromadb.config import Settings as ChromaSettings
from chat_fakes import OverlapScorer, make_chat_context
from mmsrarec.chat.graph import ChatService
from mmsrarec.config import Settings
from mmsrarec.data import load_dataset
from mmsrarec.graph.graph import open_checkpointer
from mmsrarec.models import load_encoder
from mmsrarec.web.app import create_app
data, encoder_dir, root, port = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
real_score = OverlapScorer.score
def slow_score(self, prefix, suffixes):  # a slow turn, so that the kill lands inside one
    time.sleep(0.5)
    return real_score(self, prefix, suffixes)
OverlapScorer.score = slow_score
encoder = load_encoder(encoder_dir, Settings(cache_dir=root / "cache", offline=True))
client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
context = make_chat_context(load_dataset(data), encoder, client)
service = ChatService(context, open_checkpointer(root / "chat.sqlite"))
uvicorn.run(create_app(service), host="127.0.0.1", port=port, log_level="warning")
"""


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(port: int, path: str, body: dict, token: str | None = None, timeout: float = 120):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **({SESSION_HEADER: token} if token else {})},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def test_a_chat_turn_killed_mid_way_loses_nothing(data_dir, tiny_encoder_dir, tmp_path):
    from chat_fakes import make_chat_context

    from mmsrarec.chat.graph import ChatService
    from mmsrarec.graph.graph import open_checkpointer
    from mmsrarec.trace import verify_trace

    path = script(tmp_path, "serve", SERVE)
    db, port = tmp_path / "chat.sqlite", free_port()
    process = subprocess.Popen([sys.executable, str(path), str(data_dir), str(tiny_encoder_dir),
                                str(tmp_path), str(port)])  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                token = post(port, "/api/session", {})["session"]
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.2)
        first = post(port, "/api/chat", {"message": "loved Movie 3"}, token)
        thread = first["thread_id"]
        checkpoints = count_rows(db, "checkpoints")
        outcome: list[str] = []

        def second_turn() -> None:
            body = {"message": "also Movie 20", "thread_id": thread}
            try:
                post(port, "/api/chat", body, token)
                outcome.append("answered")
            except OSError:  # the connection dropped: the server was killed mid-turn
                outcome.append("cut")

        second = threading.Thread(target=second_turn, daemon=True)
        second.start()
        deadline = time.monotonic() + 120
        while count_rows(db, "checkpoints") <= checkpoints:  # turn 2 has begun writing
            assert time.monotonic() < deadline, "turn 2 never started"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    second.join(timeout=30)
    assert outcome == ["cut"], "turn 2 finished before the kill"

    assert integrity_ok(db)
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from mmsrarec.config import Settings
    from mmsrarec.models import load_encoder

    encoder = load_encoder(str(tiny_encoder_dir), Settings(cache_dir=tmp_path / "c2"))
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    service = ChatService(
        make_chat_context(load_dataset(data_dir), encoder, client), open_checkpointer(db)
    )
    messages = [(m["role"], m["text"]) for m in service.messages(thread)]
    assert messages[:2] == [("user", "loved Movie 3"), ("assistant", first["reply"])]
    assert verify_trace(service.trace(thread)) is None
    again = service.chat(thread, "also Movie 20")  # the rerun of the killed turn
    assert again["liked"] == ["m3", "m20"] and again["recommendations"]
    assert verify_trace(service.trace(thread)) is None
    assert integrity_ok(db)
