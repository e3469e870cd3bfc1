"""Errors of the web app: one line each, documented once for every route."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

ECHO_CHARS = 40  # request data longer than this is cut when an error quotes it


class ErrorBody(BaseModel):
    """Every error: one line."""

    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503, 504)
}


def clip(text: str) -> str:
    """`text` as an error may quote it: at most `ECHO_CHARS` characters."""
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"
