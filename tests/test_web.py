"""The web app's API: sessions, isolation (404 to other sessions), bad input as clear 4xx."""

from __future__ import annotations

import re

import pytest
from chat_fakes import make_chat_service
from fastapi.testclient import TestClient

from mmsrarec.web.app import create_app
from mmsrarec.web.sessions import COOKIE, HEADER


@pytest.fixture
def app(tiny_dataset, tiny_encoder):
    return create_app(make_chat_service(tiny_dataset, tiny_encoder))


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


def session(client: TestClient) -> dict[str, str]:
    token = client.post("/api/session").json()["session"]
    return {HEADER: token}


def test_chat_page_issues_a_session_cookie(client):
    page = client.get("/")
    assert page.status_code == 200 and "chat-form" in page.text
    assert len(page.cookies[COOKIE]) >= 40
    assert client.get("/static/chat.js").status_code == 200


def test_chat_returns_reply_items_and_thread(client):
    headers = session(client)
    out = client.post("/api/chat", json={"message": "loved Movie 3"}, headers=headers)
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["reply"] and body["recommendations"] and body["thread_id"]
    more = client.post(
        "/api/chat",
        json={"message": "also Movie 20", "thread_id": body["thread_id"]},
        headers=headers,
    ).json()
    assert more["turn"] == 2 and more["liked"] == ["m3", "m20"]
    assert client.get("/api/threads", headers=headers).json()["threads"] == [body["thread_id"]]


def test_trace_endpoint_gives_the_inspector_view(client):
    headers = session(client)
    thread = client.post("/api/chat", json={"message": "loved Movie 3"}, headers=headers).json()[
        "thread_id"
    ]
    view = client.get(f"/api/traces/{thread}", headers=headers).json()
    assert view["verified"] is True
    (turn,) = view["turns"]
    assert turn["path"][0] == "understand" and "recommend" in turn["path"]
    (item, score), *_ = turn["critic_rounds"][0]["scores"].items()
    assert re.fullmatch(r"Movie \d+ \(m\d+\)", item)  # titles with ids
    assert score["feedback"].startswith("none needed: total 0.800 vs threshold 0.6")
    # The rule that decided, as the critique node recorded it (this critic has no collab term)
    critique = next(r for r in turn["records"] if r["node"] == "critique")
    assert turn["critic"] == critique["outputs"]["rule"]
    assert turn["critic"]["weights"] == {"alpha": 0.5, "beta": 0.3, "gamma": 0.2}
    assert turn["critic"]["formula"].startswith(
        "total = (alpha*info + beta*recon + gamma*len) / (alpha + beta + gamma)"
    )
    # Each recommendation's evidence: the scorer's parts (the prompt scorer: one), the words
    (first, *_) = turn["evidence"]
    assert re.fullmatch(r"Movie \d+ \(m\d+\)", first["item"])
    assert list(first["contributions"]) == ["overlap-scorer"] and first["cited"] == []
    assert turn["motivations"] and turn["motivations"][0]["titles"] == ["Movie 3"]
    assert turn["similar_users"][0]["keywords"]
    assert re.fullmatch(r"Movie \d+ \(m\d+\)", turn["similar_users"][0]["next_item"])
    assert turn["intent_line"] == "Looking for: anything; liked: Movie 3"
    retrieve = next(r for r in turn["records"] if r["node"] == "retrieve")
    assert retrieve["label"].startswith("retriever: FirstUsersRetriever")
    # rank's own time excludes the recommendation graph it ran: no second counting
    rank = next(r for r in turn["records"] if r["node"] == "rank")
    rows = {t["node"]: t for t in turn["timings"]}
    children = sum(t["seconds"] for t in turn["timings"] if t["depth"] == 1)
    assert rows["rank"]["seconds"] == pytest.approx(rank["seconds"] - children, abs=2e-4)
    assert turn["seconds"] == pytest.approx(
        sum(r["seconds"] for r in turn["records"]) - rank["seconds"] + rows["rank"]["seconds"],
        abs=1e-3,
    )
    assert "understand" in client.get("/api/graph").json()["chat"]


def test_threads_are_isolated_between_sessions(client):
    alice, bob = session(client), session(client)
    thread = client.post("/api/chat", json={"message": "loved Movie 3"}, headers=alice).json()[
        "thread_id"
    ]
    assert client.get(f"/api/traces/{thread}", headers=alice).status_code == 200
    for url in (f"/api/traces/{thread}", f"/api/threads/{thread}/messages"):
        denied = client.get(url, headers=bob)
        assert denied.status_code == 404 and "no thread" in denied.json()["error"]
    hijack = client.post("/api/chat", json={"message": "hi", "thread_id": thread}, headers=bob)
    assert hijack.status_code == 404
    assert client.get("/api/threads", headers=bob).json()["threads"] == []
    assert client.get("/api/traces/not-a-thread", headers=alice).status_code == 404


def test_chat_without_a_session_issues_one(client, app):
    fresh = TestClient(app)  # no cookie jar shared with `client`
    out = fresh.post("/api/chat", json={"message": "loved Movie 3"})
    assert out.status_code == 200 and out.json()["session"] == out.headers[HEADER]
    other = TestClient(app)
    assert other.get(f"/api/traces/{out.json()['thread_id']}").status_code == 401
    reply = other.post("/api/chat", json={"message": "hi", "thread_id": out.json()["thread_id"]})
    assert reply.status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "status", "says"),
    [
        ({"json": {"message": ""}}, 422, "empty"),
        ({"json": {"message": "   "}}, 422, "empty"),
        ({"json": {"message": "x" * 2001}}, 413, "at most 2000"),
        ({"json": {"message": 42}}, 422, "`message`"),
        ({"json": {"message": ["a"]}}, 422, "`message`"),
        ({"json": {"text": "hi"}}, 422, "`message`"),
        ({"json": {"message": "hi", "thread_id": 3}}, 422, "`thread_id`"),
        ({"json": {"message": "hi", "extra": 1}}, 422, "`extra`"),
        ({"json": ["message"]}, 422, "body"),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "JSON"),
        ({"content": b"x" * 70_000, "headers": {"Content-Type": "application/json"}}, 413, "bytes"),
    ],
)
def test_bad_input_is_a_clear_4xx_and_the_server_keeps_serving(client, kwargs, status, says):
    headers = {**session(client), **kwargs.pop("headers", {})}
    bad = client.post("/api/chat", headers=headers, **kwargs)
    assert bad.status_code == status, bad.text
    assert says in bad.json()["error"]
    good = client.post("/api/chat", json={"message": "loved Movie 3"}, headers=headers)
    assert good.status_code == 200


def test_unknown_session_tokens_are_refused(client):
    unknown = {HEADER: "forged-token"}
    assert client.get("/api/threads", headers=unknown).status_code == 401
    out = client.post("/api/chat", json={"message": "hi"}, headers=unknown)
    assert out.status_code == 401 and "unknown session" in out.json()["error"]
    assert client.get("/api/threads").status_code == 401  # none at all


def test_a_failing_run_is_a_500_and_the_server_keeps_serving(app, client, monkeypatch):
    headers = session(client)
    service = app.state.service

    def broken(thread_id, message):
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "chat", broken)
    with TestClient(app, raise_server_exceptions=False) as tolerant:
        out = tolerant.post("/api/chat", json={"message": "hi"}, headers=headers)
        assert out.status_code == 500 and "RuntimeError" in out.json()["error"]
    monkeypatch.undo()
    assert client.post("/api/chat", json={"message": "hi"}, headers=headers).status_code == 200
