"""The FastAPI app: pages, the JSON API, session checks and one-line errors.

    app = create_app(service)          # service: mmsrarec.chat.ChatService
    uvicorn.run(app, host="127.0.0.1", port=8000)

API (JSON; errors are `{"error": "<one line>"}` with a 4xx status):

- `POST /api/session` -> `{"session": token}`, also set as the `mmsrarec_session` cookie;
- `POST /api/chat` `{"message": str, "thread_id": str | null}` -> the reply, recommendations,
  matches, similar users, `thread_id` and `turn`. Without a session token one is issued
  (cookie, `X-Session-Token` header and `session` field); without `thread_id` a new
  conversation starts;
- `GET /api/threads` -> this session's thread ids;
- `GET /api/threads/{id}/messages` -> a conversation;
- `GET /api/traces/{id}` -> the inspector's view of a thread (see `web.inspect`);
- `GET /api/graph` -> the Mermaid source of the chat and recommendation graphs.

A thread is served only to the session that created it: any other session gets 404, the same
answer as for a thread that does not exist. Limits (`ServerSettings`): request bodies are
counted on the byte stream (413), sessions per client address are rate-limited (429 with
`Retry-After`), chat turns run in a bounded pool (503 with `Retry-After` when full, 504 past
the turn timeout). The schema is at `/api/openapi.json` (no docs page: it would load its
scripts from a CDN).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from mmsrarec.chat.graph import ChatService, build_chat_graph
from mmsrarec.config import ServerSettings
from mmsrarec.errors import MmsrarecError, NotPreparedError
from mmsrarec.graph.graph import build_graph
from mmsrarec.serving import RecommendationService
from mmsrarec.web.api import api_router
from mmsrarec.web.auth import ApiKeys
from mmsrarec.web.headers import SecurityHeaders
from mmsrarec.web.inspect import inspect_thread
from mmsrarec.web.limits import BodyLimit, RateLimiter
from mmsrarec.web.schema import ERRORS, NOT_BLANK, Text, clip
from mmsrarec.web.sessions import COOKIE, HEADER, SessionStore
from mmsrarec.web.turns import PoolFull, TurnPool, TurnTimeout

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


class ChatRequest(BaseModel):
    """Body of `POST /api/chat`."""

    model_config = ConfigDict(extra="forbid")

    message: Text = Field(
        description="What you liked or want; not blank, at most `max_message_chars` characters.",
        json_schema_extra={"pattern": NOT_BLANK},  # the handler's own check gives the error
    )
    thread_id: Text | None = None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return 400, f"malformed JSON body: {first.get('ctx', {}).get('error', 'cannot parse')}"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return 422, f"`{clip(where)}`: {first.get('msg', 'invalid')}"  # a key is request data


def create_app(
    service: ChatService,
    sessions: SessionStore | None = None,
    server: ServerSettings | None = None,
    recommendations: RecommendationService | None = None,
    keys: ApiKeys | None = None,
) -> FastAPI:
    """The web app around `service`, with the limits of `server`. `sessions` (default: in
    memory) in a database shared with other replicas (`SessionStore.from_settings`) makes
    the app stateless. With `recommendations`, the recommendation API (`web.api`) is served
    too, its writes checked against `keys` (default: none, so writes are refused)."""
    sessions = sessions or SessionStore()
    server = server or ServerSettings()
    limit = service.context.settings.max_message_chars
    limiter = RateLimiter(server.sessions_per_minute, server.session_burst)
    pool = TurnPool(server.turn_workers, server.turn_queue, server.turn_timeout_s)

    app = FastAPI(
        title="mmsrarec",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.add_middleware(BodyLimit, max_bytes=server.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so on every answer
    app.state.service, app.state.sessions, app.state.pool = service, sessions, pool
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if recommendations is not None:
        app.include_router(api_router(recommendations, keys or ApiKeys(), server, ERRORS))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(*_validation_message(exc))

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(MmsrarecError)
    async def on_user_error(request: Request, exc: MmsrarecError) -> JSONResponse:
        return _error(503 if isinstance(exc, NotPreparedError) else 400, str(exc))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("request %s failed", request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")

    def presented(request: Request) -> str | None:
        return request.headers.get(HEADER) or request.cookies.get(COOKIE)

    def session_of(request: Request) -> str:
        """The caller's known session token (401 when absent or unknown)."""
        token = presented(request)
        if token is None:
            raise HTTPException(401, "no session: call POST /api/session or open the chat page")
        if not sessions.known(token):
            raise HTTPException(401, "unknown session token: get a new one from POST /api/session")
        return token

    def owned(request: Request, thread_id: str) -> str:
        token = session_of(request)
        if not sessions.owns(token, thread_id):
            raise HTTPException(404, f"no thread `{clip(thread_id)}` in this session")
        return token

    def set_cookie(response: Response, token: str) -> None:
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        response.headers[HEADER] = token

    def issue(request: Request, response: Response) -> str:
        """A new session for the caller, within its address's rate limit (else 429)."""
        wait = limiter.take(request.client.host if request.client else "unknown")
        if wait:
            seconds = max(1, round(wait + 0.5))
            raise HTTPException(
                429,
                f"too many new sessions from this address: retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        token = sessions.issue()
        set_cookie(response, token)
        return token

    @app.get("/", include_in_schema=False)
    def chat_page(request: Request) -> FileResponse:
        response = FileResponse(STATIC / "chat.html")
        token = presented(request)
        if token is None or not sessions.known(token):
            issue(request, response)
        return response

    @app.get("/inspect/{thread_id}", include_in_schema=False)
    def inspect_page(thread_id: str) -> FileResponse:
        return FileResponse(STATIC / "inspect.html")

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/session", responses=ERRORS)
    def new_session(request: Request, response: Response) -> dict[str, str]:
        return {"session": issue(request, response)}

    @app.post("/api/chat", responses=ERRORS)
    async def chat(body: ChatRequest, request: Request, response: Response) -> dict[str, Any]:
        message = body.message.strip()
        if not message:
            raise HTTPException(422, "`message` is empty: write what you liked or want")
        if len(body.message) > limit:
            raise HTTPException(
                413, f"`message` has {len(body.message)} characters; at most {limit} are accepted"
            )
        issued = issue(request, response) if presented(request) is None else None
        token = issued or session_of(request)
        if body.thread_id is None:
            thread_id = service.new_thread()
            sessions.add_thread(token, thread_id)
        else:
            thread_id = body.thread_id
            if issued is not None:  # a new session owns no thread yet
                raise HTTPException(404, f"no thread `{clip(thread_id)}` in this session")
            owned(request, thread_id)
        with sessions.using(token):
            try:
                result = await pool.run(thread_id, lambda: service.chat(thread_id, message))
            except PoolFull as exc:
                raise HTTPException(503, str(exc), {"Retry-After": str(exc.retry_after)}) from None
            except TurnTimeout as exc:
                raise HTTPException(504, str(exc)) from None
        return {**result, "session": issued} if issued else result

    @app.get("/api/threads", responses=ERRORS)
    def threads(request: Request) -> dict[str, list[str]]:
        return {"threads": sessions.threads(session_of(request))}

    @app.get("/api/threads/{thread_id}/messages", responses=ERRORS)
    def messages(thread_id: str, request: Request) -> dict[str, Any]:
        owned(request, thread_id)
        return {"thread_id": thread_id, "messages": service.messages(thread_id)}

    @app.get("/api/traces/{thread_id}", responses=ERRORS)
    def trace(thread_id: str, request: Request) -> dict[str, Any]:
        owned(request, thread_id)
        return inspect_thread(thread_id, service.trace(thread_id), service.context.title)

    diagrams = {
        "chat": build_chat_graph().get_graph().draw_mermaid(),
        "recommendation": build_graph().get_graph().draw_mermaid(),
    }

    @app.get("/api/graph")
    def graph() -> dict[str, str]:
        return diagrams

    def openapi() -> dict[str, Any]:
        """FastAPI's schema with this app's message limit in it."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            properties = schema["components"]["schemas"]["ChatRequest"]["properties"]
            properties["message"]["maxLength"] = limit
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
