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
# Holds a character that is not blank to Python's `str.strip`, which the stores check with.
# Its whitespace is listed (every character `str.isspace` holds), not written `\s`: each regex
# engine has its own `\s` (Python's has U+001C-U+001F and U+0085, ECMA's, which clients and
# schema fuzzers follow, has neither but has U+FEFF), and a schema that one engine reads
# wider than the stores would publish ids they then refuse.
NOT_BLANK = (
    r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f"
    r"\u205f\u3000]"
)
