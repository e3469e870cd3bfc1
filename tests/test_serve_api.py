"""`mmsrarec serve` itself, over real HTTP on loopback (tiny local models; `content-knn`, a
ranker that reads text, on the tiny encoder): the API key from `MMSRAREC_API_KEY`, a new item
recommendable at once (and known to the chat), feedback that moves the next answer, a
replayed idempotency key, and an item added by the CLI that the server takes in on its own
(the sync timer)."""

from __future__ import annotations

import time

import httpx
import pytest
from services import ServeProcess

pytestmark = pytest.mark.slow
KEY = "serve-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def server(tmp_path, tiny_source, tiny_lm_dir, tiny_encoder_dir):
    from mmsrarec.data import prepare_dataset

    folder, _ = prepare_dataset(tiny_source, tmp_path / "data", negatives=5)
    env = {
        "MMSRAREC_API_KEY": f"other-key,{KEY}",
        "MMSRAREC_CACHE_DIR": str(tmp_path / "cache"),
        "MMSRAREC_EMBEDDING_MODEL": str(tiny_encoder_dir),
        "MMSRAREC_THREADS": "1",
        "MMSRAREC_SERVER": '{"sync_every_s": 0.3}',
    }
    flags = [
        "--dataset",
        folder.name,
        "--data-dir",
        str(tmp_path / "data"),
        "--run-dir",
        str(tmp_path / "runs"),
    ]
    args = ["--model", str(tiny_lm_dir), *flags, "--scorer", "content-knn", "--k-similar", "0"]
    process = ServeProcess(env, args, log=tmp_path / "serve.log")
    process.flags = flags
    yield process
    process.stop()


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [rec["item_id"] for rec in answer.json()["recommendations"]]


def test_the_api_of_a_served_app(server):
    from mmsrarec.cli import app
    from mmsrarec.cli.common import run_guarded

    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/api/recommend/u1").status_code == 401
        before = ids(client.get("/api/recommend/u1", params={"k": 5}, headers=AUTH))
        made = client.post(
            "/api/items",
            headers={**AUTH, "Idempotency-Key": "i1"},
            json={"title": "Zorblax", "description": "A space opera film."},
        )
        assert made.status_code == 201, made.text
        again = client.post(
            "/api/items",
            headers={**AUTH, "Idempotency-Key": "i1"},
            json={"title": "Zorblax", "description": "A space opera film."},
        )
        assert again.headers["Idempotent-Replayed"] == "true"
        new = made.json()["item_id"]
        assert again.json()["item_id"] == new
        deadline = time.monotonic() + 60  # the chat takes it in too (titles, catalogue index)
        while new not in client.post("/api/chat", json={"message": "loved Zorblax"}).json().get(
            "liked", []
        ):
            assert time.monotonic() < deadline, "the chat never took the new item in"
            time.sleep(0.3)
        similar = client.get(f"/api/items/{new}/similar", params={"k": 3})
        assert len(ids(similar)) == 3 and similar.json()["model"] == "content-knn"
        ranked = ids(client.post("/api/recommend", json={"history": ["m4"], "k": 41}))
        assert new in ranked  # recommendable at once, from its text
        event = {"user_id": "u1", "item_id": before[0], "timestamp": 99999}
        assert client.post("/api/feedback", json=event, headers=AUTH).status_code == 201
        after = ids(client.get("/api/recommend/u1", params={"k": 5}, headers=AUTH))
        assert before[0] not in after
        # an item the CLI adds reaches the server through the database
        assert (
            run_guarded(
                app, ["items", "add", "--title", "Quuxian Tea", "--item-id", "q1", *server.flags]
            )
            == 0
        )
        deadline = time.monotonic() + 60
        while "q1" not in ids(client.post("/api/recommend", json={"history": ["m4"], "k": 50})):
            assert time.monotonic() < deadline, "the server never took the new item in"
            time.sleep(0.3)
