"""API keys: `Authorization: Bearer KEY` on writes and on reads of one user's data.

Keys come from `MMSRAREC_API_KEY` (comma-separated) or the config (`api_key`, or
`api_key_sha256` for digests only). Only their SHA-256 digests are kept; a presented key is
hashed and compared with every digest in constant time (`hmac.compare_digest`, no early
exit), so neither the answer nor its timing says how much of a key was right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from mmsrarec.config import Settings


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """The digests of the accepted keys (none: every keyed operation is refused)."""

    def __init__(self, digests: Iterable[str] = ()) -> None:
        self.digests = tuple(digests)

    @classmethod
    def of(cls, *keys: str) -> ApiKeys:
        return cls(digest(key) for key in keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        plain = settings.api_key.get_secret_value() if settings.api_key is not None else ""
        keys = [key.strip() for key in plain.split(",") if key.strip()]
        return cls([*(digest(key) for key in keys), *settings.api_key_sha256])

    def __bool__(self) -> bool:
        return bool(self.digests)

    def accepts(self, key: str) -> bool:
        presented = digest(key)
        found = False
        for known in self.digests:
            found |= hmac.compare_digest(known, presented)
        return found
