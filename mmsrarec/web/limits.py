"""Limits of the web app: request body size on the byte stream, and new sessions per client.

    app = BodyLimit(app, max_bytes=65536)   # ASGI middleware: 413 past the limit, chunked too
    limiter = RateLimiter(per_minute=30, burst=20)
    wait = limiter.take("127.0.0.1")        # 0.0: allowed; else seconds until the next token

`BodyLimit` counts the bytes as the app receives them, so a chunked body (no
`Content-Length`) is refused after `max_bytes` instead of being read whole; a declared
`Content-Length` over the limit is refused before anything is read. (Starlette's own
`RequestBodyLimitMiddleware` answers some of these cases in plain text, not our JSON error.)

`RateLimiter`: each address starts with `burst` tokens and regains `per_minute / 60` per
second; creating a session spends one. Buckets of at most `max_clients` addresses are kept
(the least recently seen is forgotten first, which only gives that address a full bucket).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive` past the limit: FastAPI passes HTTP exceptions on unchanged, so
    the app's handler answers it."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body over {max_bytes} bytes")


class BodyLimit:
    """ASGI middleware: request bodies of at most `max_bytes`, counted on the byte stream."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received, started = 0, False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLarge(self.max_bytes)
        await JSONResponse({"error": error.detail}, status_code=413)(scope, receive, send)


class RateLimiter:
    """Token buckets keyed by client address."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0  # tokens per second
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Spend one of `client`'s tokens: 0.0 when there was one, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return 0.0 if allowed else (1.0 - tokens) / self.rate
