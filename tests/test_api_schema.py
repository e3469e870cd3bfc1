"""Fuzzing from the schema: schemathesis generates requests for every documented operation of
the real app (tiny scripted models, in-process ASGI; the recommendation API on a SQLite
store), valid and invalid, with and without a session and an API key. No answer may be a
5xx, and every answer must match the schema (status, headers, body)."""

from __future__ import annotations

import pytest
import schemathesis
from chat_fakes import make_chat_service, make_recommendation_service
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import ignored_auth

from mmsrarec.config import ServerSettings, Settings
from mmsrarec.web.app import create_app
from mmsrarec.web.auth import ApiKeys
from mmsrarec.web.sessions import HEADER

# Generous session limits: a 429 is documented, but it would hide the operations behind it.
SERVER = ServerSettings(sessions_per_minute=1e6, session_burst=10**6)


KEY = "schema-key"
IMAGE = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC"
)


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_encoder):
    from conftest import write_tiny_jsonl

    from mmsrarec.data import load_dataset, prepare_dataset

    root = tmp_path_factory.mktemp("schema")
    folder, _ = prepare_dataset(write_tiny_jsonl(root / "tiny"), root / "data", negatives=5)
    chat = make_chat_service(load_dataset(folder), tiny_encoder)
    settings = Settings(run_dir=root / "runs", cache_dir=root / "cache")
    api = make_recommendation_service(chat, settings, background=True)
    yield create_app(chat, server=SERVER, recommendations=api, keys=ApiKeys.of(KEY))
    api.close()


@pytest.fixture(scope="module")
def session(app):
    """A session token and a thread it owns (the rest of the generated ids are unknown)."""
    from fastapi.testclient import TestClient

    client = TestClient(app)
    token = client.post("/api/session").json()["session"]
    thread = client.post("/api/chat", json={"message": "loved Movie 3"}, headers={HEADER: token})
    return token, thread.json()["thread_id"]


def test_every_operation_answers_within_its_schema(app, session):
    token, thread = session
    api = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    # A body past the server's byte limit is refused before it is read (413, documented),
    # whatever it holds: for invalid data that is a rejection too.
    rejection = api.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/api/chat",
        "/api/session",
        "/api/traces/{thread_id}",
        "/api/recommend/{user_id}",
        "/api/recommend",
        "/api/items/{item_id}/similar",
        "/api/feedback",
        "/api/items",
    }
    calls: list[str] = []
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=cases, known=st.booleans(), owner=st.booleans())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def answers(case, known: bool, owner: bool) -> None:
            calls.append(case.method)
            # known ids in a path generated as valid (a negative one must stay invalid)
            valid_path = case.meta is None or not case.meta.is_negative_at(ParameterLocation.PATH)
            for name, value in (("thread_id", thread), ("user_id", "u1"), ("item_id", "m3")):
                if known and valid_path and case.path_parameters and name in case.path_parameters:
                    case.path_parameters[name] = value
            if isinstance(case.body, dict) and isinstance(case.body.get("image"), str):
                case.body["image"] = IMAGE  # a schema cannot say "bytes Pillow can open"
            if owner:  # the session's token, and the API key
                case.headers = {**(case.headers or {}), HEADER: token,
                                "Authorization": f"Bearer {KEY}"}  # fmt: skip
            # `ignored_auth` replays a call without its credentials, but the key set here is
            # a plain header to it; no key and a wrong key are tested in test_api.py
            case.call_and_validate(excluded_checks=[ignored_auth])

        answers()
    assert len(calls) >= 10 * len(operations)


def test_the_published_not_blank_pattern_is_the_stores_blank_in_every_engine():
    """Every code point: the pattern finds a character exactly where `str.strip` keeps one,
    read by Python's `re`, by pydantic-core's engine (the server's) and by jsonschema-rs (an
    ECMA engine, as schema clients and fuzzers read it). `\\s` differs between them: written
    with it, the schema published U+0085 and U+FEFF ids as valid, and the server refused one."""
    import re
    import sys
    from typing import Annotated

    import jsonschema_rs
    from pydantic import Field, TypeAdapter, ValidationError

    from mmsrarec.web.schema import NOT_BLANK

    pattern = re.compile(NOT_BLANK)
    adapter = TypeAdapter(Annotated[str, Field(pattern=NOT_BLANK)])
    ecma = jsonschema_rs.validator_for({"type": "string", "pattern": NOT_BLANK})
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code < 0xE000:  # surrogates: refused as text before any pattern
            continue
        char = chr(code)
        try:
            adapter.validate_python(char)
            accepted = True
        except ValidationError:
            accepted = False
        kept = bool(char.strip())
        assert accepted == bool(pattern.search(char)) == ecma.is_valid(char) == kept, hex(code)


def test_the_schema_says_not_blank_in_one_way(app):
    """Every pattern the schema publishes is `NOT_BLANK`, the chat's message included (it said
    `\\S`, and a fuzzer sent U+001E, which the handler, stripping it, found empty)."""
    from fastapi.testclient import TestClient

    from mmsrarec.web.schema import NOT_BLANK

    def patterns(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
            return own + [p for value in node.values() for p in patterns(value)]
        if isinstance(node, list):
            return [p for value in node for p in patterns(value)]
        return []

    spec = TestClient(app).get("/api/openapi.json").json()
    found = patterns(spec)
    chat = spec["components"]["schemas"]["ChatRequest"]["properties"]["message"]
    assert chat["pattern"] == NOT_BLANK and set(found) == {NOT_BLANK}
