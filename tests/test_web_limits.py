"""The web app under abuse: streamed bodies, bad text, session floods, concurrent turns,
headers. Stream and concurrency tests run a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from chat_fakes import make_chat_service
from fastapi.testclient import TestClient

from mmsrarec.cli import app as cli_app
from mmsrarec.cli.common import run_guarded
from mmsrarec.config import ServerSettings
from mmsrarec.errors import DataError
from mmsrarec.web.app import create_app
from mmsrarec.web.limits import RateLimiter
from mmsrarec.web.sessions import HEADER


@pytest.fixture
def service(tiny_dataset, tiny_encoder):
    return make_chat_service(tiny_dataset, tiny_encoder)


def serve(app) -> tuple[str, uvicorn.Server, threading.Thread]:
    """`app` on a free loopback port in a thread; returns its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture
def live(request, service):
    """A running server on `service` with the test's `ServerSettings` (indirect param)."""
    settings = getattr(request, "param", ServerSettings())
    base, server, thread = serve(create_app(service, server=settings))
    yield base, service
    server.should_exit = True
    thread.join(timeout=10)


def token(base: str) -> dict[str, str]:
    return {HEADER: httpx.post(f"{base}/api/session").json()["session"]}


# --- bodies ---------------------------------------------------------------------------------


def test_a_chunked_body_is_refused_on_the_stream_not_read_whole(live):
    base, _ = live
    host, port = base.removeprefix("http://").split(":")
    headers = token(base)
    sent, limit, chunk = 0, 64 * 1024, b"x" * 16_384
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"{HEADER}: {headers[HEADER]}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        try:  # 5 MB offered; the server answers and stops reading soon after 64 KiB
            while sent < 5_000_000:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:  # closed by the server mid-upload
            pass
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert json.loads(body[body.index(b"{") :]) == {"error": f"request body over {limit} bytes"}
    good = httpx.post(f"{base}/api/chat", json={"message": "loved Movie 3"}, headers=headers)
    assert good.status_code == 200


def test_errors_never_echo_long_request_data(service):
    client = TestClient(create_app(service))
    headers = {HEADER: client.post("/api/session").json()["session"]}
    long_id = "A" * 5000
    for response in (
        client.post("/api/chat", json={"message": "hi", "thread_id": long_id}, headers=headers),
        client.get(f"/api/traces/{long_id}", headers=headers),
        client.get(f"/api/threads/{long_id}/messages", headers=headers),
    ):
        assert response.status_code == 404
        error = response.json()["error"]
        assert "no thread" in error and len(error) < 100 and "A" * 41 not in error
    extra = client.post("/api/chat", json={"message": "hi", long_id: 1}, headers=headers)
    assert extra.status_code == 422 and len(extra.json()["error"]) < 100


# --- text -----------------------------------------------------------------------------------


def test_a_lone_surrogate_is_a_4xx_and_the_turn_never_runs(service):
    client = TestClient(create_app(service))
    session = client.post("/api/session").json()["session"]
    headers = {HEADER: session, "Content-Type": "application/json"}
    for raw in (
        rb'{"message": "Star Wars \ud800 x"}',
        rb'{"message": "hi", "thread_id": "\udfff"}',
    ):
        bad = client.post("/api/chat", content=raw, headers=headers)
        assert bad.status_code == 422, bad.text
        assert "lone surrogate" in bad.json()["error"] and "\n" not in bad.json()["error"]
    fine = client.post(
        "/api/chat", content=rb'{"message": "Star Wars \ud83c\udf1f x"}', headers=headers
    )
    assert fine.status_code == 200  # a proper surrogate pair is a character (U+1F31F)
    with pytest.raises(DataError, match="lone surrogate"):  # the CLI's `chat -m`
        service.chat(service.new_thread(), "Star Wars \ud800 x")


def test_cli_arguments_that_are_not_utf8_are_one_error_line(capsys):
    code = run_guarded(cli_app, ["chat", "-m", "Star Wars \udcff x"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "argument 3 is not valid UTF-8" in err


# --- sessions -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_flood_of_session_creations_leaves_an_active_session_working(service):
    app = create_app(service)

    async def flood() -> None:  # the app itself over ASGI: 10,000 requests in seconds
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            headers = {HEADER: (await client.post("/api/session")).json()["session"]}
            first = await client.post(
                "/api/chat", json={"message": "loved Movie 3"}, headers=headers
            )
            thread = first.json()["thread_id"]
            started = time.monotonic()
            statuses = [(await client.post("/api/session")).status_code for _ in range(10_000)]
            limits = ServerSettings()  # the burst, then the refill while the flood lasted
            allowed = (
                limits.session_burst
                + (time.monotonic() - started) * limits.sessions_per_minute / 60
            )
            assert statuses.count(200) <= allowed and statuses.count(429) >= 10_000 - allowed
            refused = await client.post("/api/session")
            assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
            assert "too many new sessions" in refused.json()["error"]
            assert (await client.get(f"/api/traces/{thread}", headers=headers)).status_code == 200
            body = {"message": "also Movie 20", "thread_id": thread}
            more = await client.post("/api/chat", json=body, headers=headers)
            assert more.status_code == 200 and more.json()["turn"] == 2
        other = TestClient(app)  # another address still gets a session
        assert other.post("/api/session").status_code == 200

    asyncio.run(flood())


def test_the_token_bucket_refills_at_its_rate_per_address():
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)  # one token a second
    assert limiter.take("b") == 0.0  # another address has its own bucket
    now[0] = 1.0
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(1.0)


# --- turns ----------------------------------------------------------------------------------


class Gate:
    """Wraps the chat graph's `invoke` (inside `ChatService.chat`, where any lock would be):
    records when turns run and can hold them."""

    def __init__(self, service, hold: float = 0.0, barrier: threading.Barrier | None = None):
        self.graph, self.real = service.graph, service.graph.invoke
        self.hold, self.barrier = hold, barrier
        self.spans: list[tuple[str, str, float, float]] = []
        self.lock = threading.Lock()

    def __call__(self, state, config, **kwargs):
        started = time.monotonic()
        if self.barrier is not None:
            self.barrier.wait(timeout=5)  # broken (a 500) when turns are not concurrent
        time.sleep(self.hold)
        out = self.real(state, config, **kwargs)
        with self.lock:
            thread = config["configurable"]["thread_id"]
            self.spans.append((thread, state["message"], started, time.monotonic()))
        return out


def post_all(base: str, bodies: list[dict], headers: dict[str, str]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        futures = []
        for body in bodies:
            futures.append(
                pool.submit(httpx.post, f"{base}/api/chat", json=body, headers=headers, timeout=30)
            )
            time.sleep(0.05)  # arrival order
        return [f.result() for f in futures]


@pytest.mark.parametrize("live", [ServerSettings(turn_workers=2)], indirect=True)
def test_turns_of_different_threads_run_in_parallel(live, monkeypatch):
    base, service = live
    gate = Gate(service, barrier=threading.Barrier(2))
    monkeypatch.setattr(service.graph, "invoke", gate)
    headers = token(base)
    out = post_all(base, [{"message": "loved Movie 3"}, {"message": "loved Movie 9"}], headers)
    assert [r.status_code for r in out] == [200, 200], [r.text for r in out]
    (_, _, a0, a1), (_, _, b0, b1) = gate.spans
    assert max(a0, b0) < min(a1, b1)  # overlapping


@pytest.mark.parametrize("live", [ServerSettings(turn_workers=4)], indirect=True)
def test_turns_of_one_thread_run_one_at_a_time_in_order(live, monkeypatch):
    base, service = live
    headers = token(base)
    thread = httpx.post(f"{base}/api/chat", json={"message": "loved Movie 3"}, headers=headers)
    thread_id = thread.json()["thread_id"]
    gate = Gate(service, hold=0.3)
    monkeypatch.setattr(service.graph, "invoke", gate)
    said = ["also Movie 20", "also Movie 21", "also Movie 22"]
    out = post_all(base, [{"message": m, "thread_id": thread_id} for m in said], headers)
    assert [r.json()["turn"] for r in out] == [2, 3, 4]
    spans = sorted(gate.spans, key=lambda span: span[2])
    assert [s[1] for s in spans] == said
    assert all(before[3] <= after[2] for before, after in zip(spans, spans[1:], strict=False))


@pytest.mark.parametrize("live", [ServerSettings(turn_workers=1, turn_queue=1)], indirect=True)
def test_a_full_queue_is_503_with_retry_after(live, monkeypatch):
    base, service = live
    monkeypatch.setattr(service.graph, "invoke", Gate(service, hold=1.0))
    headers = token(base)
    out = post_all(base, [{"message": f"loved Movie {n}"} for n in (3, 4, 5)], headers)
    assert [r.status_code for r in out] == [200, 200, 503]
    assert int(out[2].headers["Retry-After"]) >= 1 and "busy" in out[2].json()["error"]
    assert (
        httpx.post(f"{base}/api/chat", json={"message": "hi"}, headers=headers).status_code == 200
    )


@pytest.mark.parametrize("live", [ServerSettings(turn_timeout_s=0.5)], indirect=True)
def test_a_slow_turn_is_504_and_the_thread_goes_on(live, monkeypatch):
    base, service = live
    gate = Gate(service, hold=1.5)
    monkeypatch.setattr(service.graph, "invoke", gate)
    headers = token(base)
    slow = httpx.post(f"{base}/api/chat", json={"message": "loved Movie 3"}, headers=headers)
    assert slow.status_code == 504 and "longer than 0.5 s" in slow.json()["error"]
    monkeypatch.setattr(service.graph, "invoke", gate.real)
    (thread_id,) = httpx.get(f"{base}/api/threads", headers=headers).json()["threads"]
    time.sleep(1.5)  # the slow turn finishes and is stored
    more = httpx.post(
        f"{base}/api/chat",
        json={"message": "also Movie 20", "thread_id": thread_id},
        headers=headers,
    )
    assert more.status_code == 200 and more.json()["turn"] == 2


# --- headers --------------------------------------------------------------------------------


def test_pages_and_api_answers_carry_security_headers(service):
    client = TestClient(create_app(service))
    headers = {HEADER: client.post("/api/session").json()["session"]}
    for response in (
        client.get("/"),
        client.get("/inspect/x"),
        client.get("/api/threads", headers=headers),
        client.get("/api/threads"),  # a 401
        client.post("/api/chat", content=b"x" * 70_000, headers=headers),  # a 413
    ):
        assert response.headers["Cache-Control"] == "no-store", response.request.url
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    static = client.get("/static/chat.js")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


def test_the_api_schema_is_served_and_no_page_loads_a_cdn(service):
    client = TestClient(create_app(service))
    assert client.get("/api/docs").status_code == 404  # Swagger UI came from a CDN
    schema = client.get("/api/openapi.json").json()
    assert "/api/chat" in schema["paths"]
    for page in ("/", "/inspect/x", "/static/chat.js", "/static/inspect.js"):
        assert "://" not in client.get(page).text, page
