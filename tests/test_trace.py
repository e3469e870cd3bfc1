"""Keyed trace exports: a head record and an HMAC chain make truncation, reordering, a changed
thread id and a recomputed chain each fail `trace verify` with its own message; the CLI
covers the chat's threads as well as the recommendation graph's."""

from __future__ import annotations

import copy
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from chat_fakes import make_chat_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsrarec.chat.graph import ChatService
from mmsrarec.cli import app
from mmsrarec.cli.common import run_guarded
from mmsrarec.errors import DataError
from mmsrarec.graph.graph import open_checkpointer
from mmsrarec.storage import read_or_create_secret
from mmsrarec.trace import (
    GENESIS,
    chain_trace,
    check_sealed,
    record_hash,
    seal_trace,
)

KEY = b"k" * 32


def records(n: int = 6) -> list[dict[str, Any]]:
    raw = [
        {
            "node": f"node{i}",
            "started_at": 1000.0 + i,
            "seconds": 0.5,
            "model": None,
            "inputs": {"i": i},
            "outputs": {"ids": [f"m{i}", f"m{i + 1}"]},
            "prev_hash": "",
            "hash": "",
        }
        for i in range(n)
    ]
    return chain_trace([], raw)


def sealed(n: int = 6) -> dict[str, Any]:
    return seal_trace(records(n), "thread-1", KEY)


def error_of(payload: dict[str, Any], key: bytes = KEY) -> str:
    with pytest.raises(DataError) as caught:
        check_sealed(payload, key, "t.json")
    return str(caught.value)


def rehash_unkeyed(payload: dict[str, Any]) -> None:
    """What a forger without the key does: recompute every sha256 hash after an edit."""
    prev = GENESIS
    for record in payload["records"]:
        body = {k: v for k, v in record.items() if k not in ("mac", "prev_mac")}
        record["prev_hash"] = prev
        record["hash"] = prev = record_hash(body, prev)


def test_an_untouched_export_verifies() -> None:
    assert check_sealed(sealed(), KEY) == 6
    assert check_sealed(seal_trace([], "empty", KEY), KEY) == 0


@pytest.mark.parametrize("dropped", [1, 3, 6])
def test_records_removed_at_the_end_are_truncation(dropped: int) -> None:
    payload = sealed()
    payload["records"] = payload["records"][: 6 - dropped]
    assert f"truncated: {6 - dropped} of 6 records (the last {dropped} removed)" in error_of(
        payload
    )


def test_records_removed_at_the_start_or_middle_are_truncation() -> None:
    for cut in (0, 3):
        payload = sealed()
        del payload["records"][cut]
        assert f"truncated: records are missing before record {cut}" in error_of(payload)


def test_reordering_has_its_own_message() -> None:
    payload = sealed()
    payload["records"][1], payload["records"][4] = payload["records"][4], payload["records"][1]
    assert "record 1 (`node4`) of `t.json` is out of place: records were reordered" in error_of(
        payload
    )


def test_a_changed_thread_id_has_its_own_message() -> None:
    payload = sealed()
    payload["thread_id"] = "thread-2"
    assert "thread id changed: `t.json` names thread `thread-2`" in error_of(payload)
    payload["head"]["thread_id"] = "thread-2"  # both places, consistently
    assert "thread id changed: `t.json` was not exported for thread `thread-2`" in error_of(payload)


def test_an_edit_and_a_forged_chain_have_their_own_messages() -> None:
    payload = sealed()
    payload["records"][2]["outputs"]["ids"] = ["m40"]
    assert "record 2 (`node2`) of `t.json` fails verification: tampered" in error_of(payload)
    rehash_unkeyed(payload)
    assert "record 2 (`node2`) of `t.json` is forged" in error_of(payload)
    assert "is forged" in error_of(sealed(), key=b"another data dir's key.........")


def test_an_edited_head_is_detected() -> None:
    payload = sealed()
    del payload["records"][-1]
    payload["head"]["count"] = 5  # hide the truncation
    assert "head record of `t.json` was edited" in error_of(payload)
    del payload["head"]
    assert "has no head record" in error_of(payload)


MUTATIONS = ["drop", "swap", "edit", "head"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=1, max_value=8),
    kind=st.sampled_from(MUTATIONS),
    data=st.data(),
)
def test_any_mutation_of_an_export_is_detected(n: int, kind: str, data: st.DataObject) -> None:
    payload = sealed(n)
    original = copy.deepcopy(payload)
    chosen = data.draw(st.integers(0, n - 1), label="record")
    rehash = data.draw(st.booleans(), label="recompute the unkeyed chain")
    if kind == "drop":
        del payload["records"][chosen]
    elif kind == "swap":
        other = data.draw(
            st.integers(0, n - 1).filter(lambda i: i != chosen) if n > 1 else st.just(chosen),
            label="other",
        )
        rs = payload["records"]
        rs[chosen], rs[other] = rs[other], rs[chosen]
    elif kind == "edit":
        record = payload["records"][chosen]
        field = data.draw(st.sampled_from(sorted(record)), label="field")
        value = data.draw(
            st.one_of(st.integers(), st.text(max_size=8), st.none(), st.floats(allow_nan=False)),
            label="value",
        )
        record[field] = value
    else:
        field = data.draw(st.sampled_from(sorted(payload["head"])), label="head field")
        payload["head"][field] = data.draw(
            st.one_of(st.integers(-2, 20), st.text(max_size=70), st.just(GENESIS)), label="value"
        )
    if rehash and kind != "head":
        rehash_unkeyed(payload)
    if payload == original:  # a swap of one record with itself, or an edit to the same value
        return
    with pytest.raises(DataError):
        check_sealed(payload, KEY, "t.json")


def test_the_key_is_created_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "data" / "trace.key"
    key = read_or_create_secret(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_secret(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["trace.key"]  # no temporary left


def test_cli_exports_and_verifies_a_chat_thread(tiny_dataset, tiny_encoder, tmp_path, capsys):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    run_dir, data_dir = tmp_path / "runs", tmp_path / "data"
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    service = ChatService(
        make_chat_context(tiny_dataset, tiny_encoder, client),
        open_checkpointer(run_dir / "chat.sqlite"),
    )
    thread = service.new_thread()
    service.chat(thread, "loved Movie 3")
    n_records = len(service.trace(thread))
    base = ["--run-dir", str(run_dir)]

    assert run_guarded(app, ["trace", "list", *base]) == 0
    assert f"{thread}  chat" in capsys.readouterr().out
    assert run_guarded(app, ["trace", "show", thread, *base]) == 0
    assert "chain verified" in capsys.readouterr().out
    out = tmp_path / "t.json"
    keyed = [*base, "--data-dir", str(data_dir)]
    assert run_guarded(app, ["trace", "export", thread, "--out", str(out), *keyed]) == 0
    assert json.loads(out.read_text())["head"]["count"] == n_records
    assert run_guarded(app, ["trace", "verify", str(out), "--data-dir", str(data_dir)]) == 0
    assert f"{n_records} records verified" in capsys.readouterr().out

    # another data dir has another key: the same file is not "produced here"
    other = ["--data-dir", str(tmp_path / "elsewhere")]
    assert run_guarded(app, ["trace", "verify", str(out), *other]) == 2
    assert "no trace key" in capsys.readouterr().err
    payload = json.loads(out.read_text())
    payload["records"] = payload["records"][:-1]
    out.write_text(json.dumps(payload))
    assert run_guarded(app, ["trace", "verify", str(out), "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "truncated" in err


def test_cli_trace_faults_are_one_line_errors(tmp_path: Path, capsys) -> None:
    assert run_guarded(app, ["trace", "verify", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    db = tmp_path / "runs" / "graph.sqlite"
    open_checkpointer(db)
    missing = tmp_path / "nonexistent" / "dir" / "t.json"
    args = ["trace", "export", "x", "--out", str(missing), "--run-dir", str(db.parent)]
    assert run_guarded(app, args) == 2
    assert "does not exist: create it first" in capsys.readouterr().err
    assert not missing.parent.parent.exists()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(st.dictionaries(st.sampled_from(["node", "hash", "mac", "prev_mac", "x"]),
                                     json_values, max_size=4), max_size=4),
    head=st.one_of(json_values, st.fixed_dictionaries({
        "count": json_values, "last": json_values, "thread_id": json_values,
        "mac": json_values, "thread_mac": json_values,
    })),
    thread=json_values,
)  # fmt: skip
def test_any_json_is_verified_or_refused_in_one_line(records, head, thread) -> None:
    with pytest.raises(DataError) as caught:
        check_sealed({"thread_id": thread, "records": records, "head": head}, KEY, "t.json")
    assert "\n" not in str(caught.value)


def test_chat_thread_ids_never_look_like_options() -> None:
    from mmsrarec.chat.graph import ChatService

    ids = {ChatService.new_thread() for _ in range(2000)}
    assert len(ids) == 2000 and not any(i.startswith("-") for i in ids)
