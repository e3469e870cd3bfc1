"""Fuzzing from the schema: schemathesis generates requests for every documented operation of
the real app (tiny scripted models, in-process ASGI), valid and invalid, with and without a
session. No answer may be a 5xx, and every answer must match the schema (status, headers,
body)."""

from __future__ import annotations

import pytest
import schemathesis
from chat_fakes import make_chat_service
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from mmsrarec.config import ServerSettings
from mmsrarec.web.app import create_app
from mmsrarec.web.sessions import HEADER

# Generous session limits: a 429 is documented, but it would hide the operations behind it.
SERVER = ServerSettings(sessions_per_minute=1e6, session_burst=10**6)


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_encoder):
    from conftest import write_tiny_jsonl

    from mmsrarec.data import load_dataset, prepare_dataset

    root = tmp_path_factory.mktemp("schema")
    folder, _ = prepare_dataset(write_tiny_jsonl(root / "tiny"), root / "data", negatives=5)
    return create_app(make_chat_service(load_dataset(folder), tiny_encoder), server=SERVER)


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
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/api/chat",
        "/api/session",
        "/api/traces/{thread_id}",
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
            if known and case.path_parameters and "thread_id" in case.path_parameters:
                case.path_parameters["thread_id"] = thread
            if owner:
                case.headers = {**(case.headers or {}), HEADER: token}
            case.call_and_validate()

        answers()
    assert len(calls) >= 10 * len(operations)
