"""LangGraph's own development server (`langgraph dev`, langgraph-cli[inmem]) serves both graphs
of `langgraph.json`, driven through `langgraph-sdk` over loopback: assistants, schemas,
threads, runs, streaming and state. The graphs build their parts from `MMSRAREC_*` (tiny local
models, a tiny dataset), so the server needs no network and no real weights."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from services import free_port, stop, wait_http

pytest.importorskip(
    "langgraph_api", reason="LangGraph's server is not installed: pip install -e '.[langgraph]'"
)
sdk = pytest.importorskip("langgraph_sdk", reason="pip install -e '.[langgraph]'")

pytestmark = pytest.mark.slow  # real engines: each start costs seconds
ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
RUN_SETTINGS = {"scorer": "item-knn", "k_similar": 0, "max_rounds": 1, "top_k": 3}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_lm_dir, tiny_encoder_dir):
    """`langgraph dev` on 127.0.0.1 in a scratch folder; yields its URL, stops it after."""
    from chat_fakes import write_genre_catalog

    from mmsrarec.data import prepare_dataset

    work = tmp_path_factory.mktemp("langgraph")
    prepare_dataset(write_genre_catalog(work / "genres"), work / "data", negatives=5)
    # A copy beside the package, so the server's own files (.langgraph_api/) stay out of ROOT.
    shutil.copy(ROOT / "langgraph.json", work / "langgraph.json")
    (work / "mmsrarec").symlink_to(ROOT / "mmsrarec")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MMSRAREC_DATA_DIR": str(work / "data"),
        "MMSRAREC_DATASET": "genres",
        "MMSRAREC_CACHE_DIR": str(work / "cache"),
        "MMSRAREC_RUN_DIR": str(work / "runs"),
        "MMSRAREC_MODEL": str(tiny_lm_dir),
        "MMSRAREC_EMBEDDING_MODEL": str(tiny_encoder_dir),
        "MMSRAREC_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    }
    log = (work / "server.log").open("w")
    process = subprocess.Popen(
        [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
        + ["--port", str(port), "--config", str(work / "langgraph.json")],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ok", 180, process, work / "server.log")
        yield url
    finally:
        stop(process)
        log.close()


@pytest.fixture(scope="module")
def client(server):
    return sdk.get_sync_client(url=server)


def assistant_of(client, graph: str) -> dict:
    (assistant,) = client.assistants.search(graph_id=graph)
    return assistant


def test_both_graphs_are_served_with_their_schemas(client) -> None:
    graphs = {assistant["graph_id"] for assistant in client.assistants.search()}
    assert graphs == {"recommend", "chat"}
    recommend = client.assistants.get_schemas(assistant_of(client, "recommend")["assistant_id"])
    assert set(recommend["input_schema"]["properties"]) == {
        "user_id", "history", "candidates", "top_k", "debias", "evidence_window",
    }  # fmt: skip
    assert {"scorer", "k_similar", "n_history"} <= set(recommend["context_schema"]["properties"])
    assert "recommendations" in recommend["output_schema"]["properties"]
    chat = client.assistants.get_schemas(assistant_of(client, "chat")["assistant_id"])
    assert set(chat["input_schema"]["properties"]) == {"message"}
    assert set(chat["context_schema"]["properties"]) == {"chat", "graph"}


def test_recommend_thread_run_stream_and_state(client) -> None:
    thread = client.threads.create()
    chunks = list(
        client.runs.stream(
            thread["thread_id"],
            "recommend",
            input={"user_id": "u2", "top_k": 3},
            context=RUN_SETTINGS,
            stream_mode="updates",
        )
    )
    nodes = [node for chunk in chunks if chunk.event == "updates" for node in chunk.data]
    assert nodes[0] == "load_user" and nodes[-1] == "recommend"
    assert {"summarize", "critique", "retrieve"} <= set(nodes)

    state = client.threads.get_state(thread["thread_id"])
    values = state["values"]
    assert values["user_id"] == "u2"
    recommendations = values["recommendations"]
    assert len(recommendations) == 3
    assert [r["score"] for r in recommendations] == sorted(
        (r["score"] for r in recommendations), reverse=True
    )
    assert [record["node"] for record in values["trace"]][0] == "load_user"

    again = client.runs.wait(
        client.threads.create()["thread_id"],
        "recommend",
        input={"user_id": "u2", "top_k": 3},
        context=RUN_SETTINGS,
    )
    assert [r["item_id"] for r in again["recommendations"]] == [
        r["item_id"] for r in recommendations
    ]


def test_chat_keeps_its_conversation_in_the_server_thread(client) -> None:
    thread = client.threads.create()["thread_id"]
    context = {"graph": RUN_SETTINGS, "chat": {"top_k": 3}}
    first = client.runs.wait(thread, "chat", input={"message": "a comedy"}, context=context)
    assert first["recommendations"] and len(first["recommendations"]) <= 3
    shown = {r["item_id"] for r in first["recommendations"]}
    second = client.runs.wait(thread, "chat", input={"message": "something older"}, context=context)
    assert second["reply"] and second["intent"]["genres"] == first["intent"]["genres"]
    assert not shown & {r["item_id"] for r in second["recommendations"]}  # never repeats
    values = client.threads.get_state(thread)["values"]
    assert values["turn"] == 2
    assert [m["text"] for m in values["messages"] if m["role"] == "user"] == [
        "a comedy", "something older",
    ]  # fmt: skip
    runs = client.runs.list(thread)
    assert len(runs) == 2 and {run["status"] for run in runs} == {"success"}


def test_a_bad_context_fails_the_run_not_the_server(client) -> None:
    thread = client.threads.create()["thread_id"]
    with pytest.raises(Exception, match="scorer"):
        client.runs.wait(
            thread,
            "recommend",
            input={"user_id": "u2"},
            context={"scorer": "nope"},
            raise_error=True,
        )
    assert client.assistants.search(graph_id="recommend")
