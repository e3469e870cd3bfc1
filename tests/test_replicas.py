"""Two `mmsrarec serve` processes (tiny local models, item-kNN ranker, similar users on) share
one PostgreSQL and one Chroma server: a conversation started on replica A continues on
replica B (same thread, same history, same hash-chained trace), the session is honoured by
both, and B carries on when A is gone. Real HTTP on loopback.

The replicas share the trained artifacts (the run dir: SASRec, as a deployment ships them)
and nothing else: each has its own cache dir, and no conversation or session is written to
the run dir.

Skipped where PostgreSQL (or the `chroma` CLI) is missing; `.ci/run` installs PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from services import ChromaServer, ServeProcess, chroma_missing

from mmsrarec.web.sessions import HEADER

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chroma_missing() is not None, reason=chroma_missing() or ""),
]


@pytest.fixture
def replicas(tmp_path, tiny_source, tiny_lm_dir, tiny_encoder_dir, database_url):
    from mmsrarec.data import prepare_dataset

    folder, _ = prepare_dataset(tiny_source, tmp_path / "data", negatives=5)
    chroma = ChromaServer(tmp_path / "chroma-server")
    args = [
        *("--model", str(tiny_lm_dir), "--dataset", folder.name),
        *("--data-dir", str(tmp_path / "data"), "--run-dir", str(tmp_path / "runs")),
        *("--scorer", "item-knn", "--k-similar", "2"),
        *("--database-url", database_url, "--chroma-url", chroma.url),
    ]
    servers: list[ServeProcess] = []
    try:
        for name in ("a", "b"):  # started together: one trains SASRec and builds the shared
            env = {  # indexes while the other waits for it (`database.exclusive`), then reuses
                "MMSRAREC_CACHE_DIR": str(tmp_path / f"cache-{name}"),
                "MMSRAREC_EMBEDDING_MODEL": str(tiny_encoder_dir),
                "MMSRAREC_THREADS": "1",
            }
            log = tmp_path / f"replica-{name}.log"
            servers.append(ServeProcess(env, args, log=log, wait=False))
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()
        chroma.stop()


def test_a_conversation_moves_between_replicas(replicas, tmp_path):
    a, b = (httpx.Client(base_url=s.url, timeout=60) for s in replicas)
    token = a.post("/api/session").json()["session"]
    auth = {HEADER: token}

    first = a.post("/api/chat", headers=auth, json={"message": "loved Movie 3, want space opera"})
    assert first.status_code == 200, first.text
    thread = first.json()["thread_id"]
    assert first.json()["turn"] == 1 and first.json()["recommendations"]
    assert len(first.json()["similar_users"]) == 2  # from the Chroma server's knowledge base

    second = b.post("/api/chat", headers=auth, json={"message": "not horror", "thread_id": thread})
    assert second.status_code == 200, second.text
    assert (second.json()["thread_id"], second.json()["turn"]) == (thread, 2)
    intent = second.json()["intent"]  # turn 1's liked title, read from A's checkpoint
    assert intent["liked"] == first.json()["intent"]["liked"] and intent["liked"]
    shown_on_a = {r["item_id"] for r in first.json()["recommendations"]}
    assert shown_on_a <= set(intent["shown"])  # never offered again, whichever replica

    for client in (a, b):  # the session and its thread are known to both
        assert client.get("/api/threads", headers=auth).json() == {"threads": [thread]}
        messages = client.get(f"/api/threads/{thread}/messages", headers=auth).json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[0]["text"] == "loved Movie 3, want space opera"
    trace_a = a.get(f"/api/traces/{thread}", headers=auth).json()
    trace_b = b.get(f"/api/traces/{thread}", headers=auth).json()
    assert trace_a == trace_b and trace_a["verified"] and len(trace_a["turns"]) == 2

    stranger = {HEADER: b.post("/api/session").json()["session"]}
    assert a.get(f"/api/threads/{thread}/messages", headers=stranger).status_code == 404
    assert (
        b.post(
            "/api/chat", headers=stranger, json={"message": "x", "thread_id": thread}
        ).status_code
        == 404
    )

    replicas[0].stop()  # A goes away: B carries the conversation on
    third = b.post(
        "/api/chat", headers=auth, json={"message": "something older", "thread_id": thread}
    )
    assert (third.status_code, third.json()["turn"]) == (200, 3)
    assert b.get(f"/api/traces/{thread}", headers=auth).json()["verified"]
    assert not (tmp_path / "runs" / "chat.sqlite").exists()  # all of it is in PostgreSQL
