"""The recommendation API for applications (a router that `create_app` includes).

Reads:
- `GET /api/recommend/{user_id}?k=&exclude_seen=`: the whole catalogue ranked after the
  user's whole history (prepared data, then live feedback). A user's data: needs the key.
- `POST /api/recommend` `{"history": [item ids], "k", "exclude_seen", "filters"}`: the same
  for an anonymous session; `filters`: `exclude` (never these), `only` (rank only these).
- `GET /api/items/{item_id}/similar?k=`: what is chosen after this item.

Each answer has the shape of `mmsrarec recommend --json`: `recommendations` (`item_id`,
`title`, `score`, `evidence`), `similar_users`, the traced run's `thread_id`, `model` and
`model_version`. They run in a bounded pool (503 with `Retry-After` when full, 504 past
`api_timeout_s`).

Writes (need `Authorization: Bearer KEY`; an `Idempotency-Key` header makes a retry safe:
the same key and body give back the first answer with `Idempotent-Replayed: true` and
store nothing, the same key with another body is refused with 422):
- `POST /api/feedback` `{"user_id", "item_id", "timestamp", "kind"?}` -> 201, the stored event;
- `POST /api/items` `{"title", "description"?, "image"? (base64), "item_id"?}` -> 201, the
  stored item with its `item_id`; recommendable at once.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr
from starlette.exceptions import HTTPException

from mmsrarec.config import ServerSettings
from mmsrarec.errors import DataError, NotPreparedError
from mmsrarec.nodes.context import MAX_DEBIAS, MAX_EVIDENCE_WINDOW, GraphSettings
from mmsrarec.nodes.history import MAX_HISTORY
from mmsrarec.serving.service import RecommendationService, UnknownUser
from mmsrarec.serving.store import IdempotencyConflict, ItemExists, Written, as_json
from mmsrarec.serving.writes import DEFAULT_KIND, MAX_ID_CHARS, UnknownItem
from mmsrarec.types import Recommendation, SimilarUser
from mmsrarec.web.auth import ApiKeys
from mmsrarec.web.schema import NOT_BLANK, Text, clip, utf8_only
from mmsrarec.web.turns import PoolFull, TurnPool, TurnTimeout

T = TypeVar("T")
MAX_K = 100
DEFAULT_K = GraphSettings.model_fields["top_k"].default
MAX_FILTER_IDS = 5000
MAX_TEXT_CHARS = 5000
REPLAYED = "Idempotent-Replayed"

# The constraints before the validator, so that the published schema carries the pattern too.
Id = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_ID_CHARS, pattern=NOT_BLANK),
    AfterValidator(utf8_only),
]
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many items to return.")]
DEBIAS_HELP = f"{GraphSettings.model_fields['debias'].description} Default: the server's setting."
Debias = Annotated[float | None, Query(ge=0, le=MAX_DEBIAS, description=DEBIAS_HELP)]
EVIDENCE_HELP = (f"{GraphSettings.model_fields['evidence_window'].description} Default: the "
                 "server's setting.")  # fmt: skip
EvidenceWindow = Annotated[
    int | None, Query(ge=0, le=MAX_EVIDENCE_WINDOW, description=EVIDENCE_HELP)
]
Credentials = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description="An API key (`MMSRAREC_API_KEY`).")),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Makes a retry safe: the first answer is given back.",
    ),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(Strict):
    """What a ranked list may hold."""

    exclude: list[Id] = Field(
        default=[], max_length=MAX_FILTER_IDS, description="Never recommend these item ids."
    )
    only: list[Id] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FILTER_IDS,
        description="Rank only these item ids.",
    )


class HistoryRequest(Strict):
    """Body of `POST /api/recommend`: an anonymous session's items, oldest first."""

    history: list[Id] = Field(min_length=1, max_length=MAX_HISTORY)
    k: int = Field(default=DEFAULT_K, ge=1, le=MAX_K, description="How many items to return.")
    exclude_seen: bool = Field(default=True, description="Leave out the history's items.")
    filters: Filters | None = None
    debias: float | None = Field(default=None, ge=0, le=MAX_DEBIAS, description=DEBIAS_HELP)
    evidence_window: int | None = Field(
        default=None, ge=0, le=MAX_EVIDENCE_WINDOW, description=EVIDENCE_HELP
    )


class FeedbackRequest(Strict):
    """Body of `POST /api/feedback`: one interaction."""

    user_id: Id
    item_id: Id
    timestamp: float = Field(allow_inf_nan=False, description="Seconds since the epoch.")
    kind: Id = Field(
        default=DEFAULT_KIND,
        description="A label (click, purchase, ...); every kind counts as an interaction.",
    )


class ItemRequest(Strict):
    """Body of `POST /api/items`: a new catalogue item."""

    title: Text = Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NOT_BLANK)
    description: Text = Field(default="", max_length=MAX_TEXT_CHARS)
    image: Text | None = Field(default=None, description="PNG, JPEG, GIF or WebP, base64.")
    item_id: Id | None = Field(default=None, description="Your id for it; default: a new one.")


class Recommended(BaseModel):
    """A ranked list, as `mmsrarec recommend --json` prints it."""

    thread_id: str | None = Field(
        description="The traced run (`mmsrarec trace show THREAD`); null when the filters "
        "left nothing to rank."
    )
    user_id: str
    model: str
    model_version: str
    recommendations: list[Recommendation]
    similar_users: list[SimilarUser]


class FeedbackOut(BaseModel):
    seq: int
    user_id: str
    item_id: str
    timestamp: float
    kind: str


class ItemOut(BaseModel):
    seq: int
    item_id: str
    title: str
    description: str
    image: str | None


def api_router(
    service: RecommendationService, keys: ApiKeys, server: ServerSettings, errors: dict
) -> APIRouter:
    """The API's routes over `service`, writes checked against `keys`."""
    router = APIRouter(prefix="/api", responses=errors)
    pool = TurnPool(server.api_workers, server.api_queue, server.api_timeout_s)

    def authorised(credentials: Credentials) -> None:
        challenge = {"WWW-Authenticate": "Bearer"}
        if not keys:
            raise HTTPException(
                403,
                "no API key is configured on this server: set "
                "`MMSRAREC_API_KEY` (comma-separated keys) and restart",
            )
        if credentials is None:
            raise HTTPException(401, "send an API key: `Authorization: Bearer KEY`", challenge)
        if not keys.accepts(credentials.credentials):
            raise HTTPException(401, "the API key is not valid", challenge)

    Keyed = Depends(authorised)

    async def ranked(call) -> dict[str, Any]:
        try:
            return await pool.run(uuid.uuid4().hex, lambda: _answer(call))
        except PoolFull as exc:
            raise HTTPException(503, str(exc), {"Retry-After": str(exc.retry_after)}) from None
        except TurnTimeout:
            raise HTTPException(504, "no answer within the server's `api_timeout_s`") from None

    @router.get("/recommend/{user_id}", dependencies=[Keyed], response_model=Recommended)
    async def recommend_user(
        user_id: Annotated[str, Path(max_length=MAX_ID_CHARS)],
        k: K = DEFAULT_K,
        exclude_seen: Annotated[bool, Query(description="Leave out what the user had.")] = True,
        debias: Debias = None,
        evidence_window: EvidenceWindow = None,
    ) -> dict[str, Any]:
        """The whole catalogue ranked after the user's whole history (404: unknown user)."""
        return await ranked(lambda: service.recommend_user(
            user_id, k, exclude_seen, debias=debias, evidence_window=evidence_window))  # fmt: skip

    @router.post("/recommend", response_model=Recommended)
    async def recommend_history(body: HistoryRequest) -> dict[str, Any]:
        """The catalogue ranked after an anonymous session's history."""
        filters = body.filters or Filters()
        return await ranked(
            lambda: service.recommend_history(
                body.history,
                body.k,
                exclude_seen=body.exclude_seen,
                exclude=filters.exclude,
                only=filters.only,
                debias=body.debias,
                evidence_window=body.evidence_window,
            )
        )

    @router.get("/items/{item_id}/similar", response_model=Recommended)
    async def similar(
        item_id: Annotated[str, Path(max_length=MAX_ID_CHARS)], k: K = DEFAULT_K
    ) -> dict[str, Any]:
        """What is chosen after this item (404: unknown item)."""
        if item_id not in service.served.context.dataset.item_index:
            service.sync_items()  # another process may have just added it
            if item_id not in service.served.context.dataset.item_index:
                raise HTTPException(404, f"no item `{clip(item_id)}` in the catalogue")
        return await ranked(lambda: service.similar_items(item_id, k))

    @router.post("/feedback", dependencies=[Keyed], status_code=201, response_model=FeedbackOut)
    async def feedback(
        body: FeedbackRequest, response: Response, key: IdempotencyKey = None
    ) -> dict[str, Any]:
        """Store one interaction; the user's next recommendations read it."""
        written = await run_in_threadpool(
            lambda: _answer(
                lambda: service.add_feedback(
                    body.user_id, body.item_id, body.timestamp, body.kind, key
                )
            )
        )
        return _written(written, response)

    @router.post("/items", dependencies=[Keyed], status_code=201, response_model=ItemOut)
    async def add_item(
        body: ItemRequest, response: Response, key: IdempotencyKey = None
    ) -> dict[str, Any]:
        """Store a new item; recommendable at once from its text."""
        image = _image_bytes(body.image) if body.image is not None else None
        written = await run_in_threadpool(
            lambda: _answer(
                lambda: service.add_item(body.title, body.description, image, body.item_id, key)
            )
        )
        return _written(written, response)

    return router


def _answer(call: Callable[[], T]) -> T:
    """`call()`, its data errors as 404, 409 or 422 (`NotPreparedError` is the app's 503)."""
    try:
        return call()
    except NotPreparedError:
        raise
    except DataError as exc:
        raise HTTPException(_status(exc), str(exc)) from None


def _status(error: DataError) -> int:
    """404: an id nobody has; 409: taken by an earlier write; 422: any other bad input."""
    if isinstance(error, UnknownUser | UnknownItem):
        return 404
    return 409 if isinstance(error, ItemExists | IdempotencyConflict) else 422


def _written(written: Written, response: Response) -> dict[str, Any]:
    if written.replayed:
        response.headers[REPLAYED] = "true"
    return as_json(written.row)


def _image_bytes(text: str) -> bytes:
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(
            422, "`image` is not base64 (send the file's bytes in base64)"
        ) from None
