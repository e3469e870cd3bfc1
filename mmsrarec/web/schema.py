"""What every route shares: text fields checked as UTF-8, one-line errors documented once."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, StrictStr

from mmsrarec.prompt_text import encoding_problem

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


def utf8_only(text: str) -> str:
    problem = encoding_problem(text)
    if problem is not None:
        raise ValueError(f"not valid text ({problem}): send UTF-8")
    return text


Text = Annotated[StrictStr, AfterValidator(utf8_only)]
# Holds a character that is not blank to Python's `str.strip`, which the stores check with:
# it counts U+001C-U+001F as whitespace, where the schema's regex engines (pydantic-core's,
# a client's ECMA one) do not, so a plain `\S` would publish ids the stores then refuse.
NOT_BLANK = r"[^\s\x1c-\x1f]"
