"""Past one machine: catalogue summarisation fanned out over Ray actors to an OpenAI-compatible
server (resumable through the keyword cache), and data-parallel SASRec and LLM recommender
training on Ray Train."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from conftest import write_tiny_jsonl
from test_llm_recommender import tiny_item_lm
from test_ray import settings_for
from test_sasrec import TINY
from tiny_models import build_tiny_causal_lm

from mmsrarec.cli import app
from mmsrarec.cli.common import run_guarded
from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.models.item_lm import ItemLMConfig
from mmsrarec.summarization import PROMPT_VERSION, KeywordCache, summarize_catalog
from mmsrarec.summarization.cache import keyword_cache_path
from mmsrarec.summarization.fan_out import ray_summarizers
from mmsrarec.training.item_lm_trainer import optimizers_for, train_item_lm_epoch, user_windows
from mmsrarec.training.ray_train import shard, train_item_lm_on_ray, train_sasrec_on_ray
from mmsrarec.training.sasrec_trainer import EpochSetup, train_epoch

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
pytestmark = pytest.mark.slow
WORDS = ["harbor", "comet", "velvet", "granite", "meadow", "signal", "ember", "lotus"]


class Completions(BaseHTTPRequestHandler):
    """`/v1/models` and greedy `/v1/completions`: three words chosen by the prompt's hash."""

    prompts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._json({"object": "list", "data": [{"id": "fake-llm", "object": "model"}]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Completions.prompts.append(body["prompt"])
        digest = hashlib.sha256(body["prompt"].encode()).digest()
        text = ", ".join(WORDS[b % len(WORDS)] for b in digest[:3])
        self._json({"id": "c", "object": "text_completion", "created": 0, "model": "fake-llm",
                    "choices": [{"index": 0, "text": text, "finish_reason": "stop",
                                 "logprobs": None}]})  # fmt: skip

    def _json(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with 2 CPUs, one BLAS thread per worker (as in test_ray.py)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})  # fmt: skip
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def server_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Completions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_summaries_fan_out_over_two_actors_and_resume(
    cluster,
    server_url,
    tiny_dataset,
    tmp_path,  # noqa: F811
) -> None:
    model = build_tiny_causal_lm(tmp_path / "tiny-lm")
    settings = settings_for(tmp_path, "tiny", ray_address="local", ray_workers=2,
                            llm_server_url=server_url, model=str(model),
                            cache_dir=tmp_path / "cache")  # fmt: skip
    items = tiny_dataset.items
    with ray_summarizers(settings, batch_size=4) as (name, fan_out, actors):
        assert name == "server:fake-llm"
        with KeywordCache(keyword_cache_path(settings), name, PROMPT_VERSION) as cache:
            first = summarize_catalog(items[:12], None, cache, batch_size=4, fan_out=fan_out,
                                      progress=False)  # fmt: skip
            Completions.prompts.clear()
            rest = summarize_catalog(items, None, cache, batch_size=4, fan_out=fan_out,
                                     progress=False)  # fmt: skip
            stored = cache.get_many(items)
        counts = ray.get([actor.count.remote() for actor in actors])
    assert first["summarized"] == 12 and rest == {**rest, "summarized": 28, "cached": 12}
    assert len(Completions.prompts) == 28  # only the missing items went to the server
    assert all(c > 0 for c in counts) and sum(counts) == 40
    assert len(stored) == 40 and all(set(words) <= set(WORDS) for words in stored.values())


def test_summarize_cli_with_ray_needs_a_server(tmp_path, capsys) -> None:
    args = ["summarize", "--ray", "local", "--data-dir", str(tmp_path), "--dataset", "none"]
    assert run_guarded(app, args) == 2
    assert "error:" in capsys.readouterr().err


def one_process(dataset, config, seed: int, epochs: int) -> np.ndarray:
    """The same training in this process: per-epoch mean losses."""
    from mmsrarec.models.sasrec import SASRec

    torch.manual_seed(seed)
    model = SASRec(dataset.n_items, config)
    setup = EpochSetup.for_dataset(dataset, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(seed)
    return np.array([train_epoch(model, setup, optimizer, config, generator)
                     for _ in range(epochs)])  # fmt: skip


def test_data_parallel_sasrec_matches_one_process(cluster, tiny_dataset, tmp_path) -> None:
    """2 workers x 4 windows per step against one process at 8 per step, same seed: both
    learn, and the loss curves stay within 15% of each other at every epoch."""
    config = replace(TINY, batch_size=4)
    dataset_dir = tmp_path / "data" / "tiny"  # where the fixture prepared it
    parallel = train_sasrec_on_ray(dataset_dir, config, 0, 2, 8, tmp_path / "ray")
    single = one_process(tiny_dataset, replace(config, batch_size=8), 0, 8)
    losses = np.array([row["loss"] for row in parallel.log])
    assert parallel.workers == 2 and len(losses) == 8
    assert losses[-1] < 0.7 * losses[0] and single[-1] < 0.7 * single[0]
    assert np.max(np.abs(losses - single) / single) < 0.15
    assert all(row["sequences_per_s"] > 0 for row in parallel.log)
    assert shard([[1]] * 7, 0, 2) == [[1]] * 3 == shard([[1]] * 7, 1, 2)


def test_data_parallel_llm_recommender_matches_one_process(cluster, tiny_lm_dir, tmp_path):
    """The tiny LLM recommender on 60 users walking a 40-item catalog: 2 workers x 8 windows
    per step against one process at 16 per step, same seed and schedule (4 steps an epoch).
    Both learn, the loss curves stay within 5% of each other at every epoch (1.2% measured),
    and the two replicas' trainable weights are bit-identical after every epoch."""
    source = write_tiny_jsonl(tmp_path / "src", n_users=60, n_items=40)
    folder, _ = prepare_dataset(source, tmp_path / "data", negatives=10)
    dataset = load_dataset(folder)
    config = ItemLMConfig(layers=2, bf16=False, lr=5e-3, max_epochs=6, batch_size=8)
    build = functools.partial(tiny_item_lm, tiny_lm_dir, tmp_path, dataset.n_items)
    # the workers cannot import the tests: ship the builder's code with it
    ray.cloudpickle.register_pickle_by_value(sys.modules[tiny_item_lm.__module__])
    parallel = train_item_lm_on_ray(build, folder, config, 0, 2, 6, tmp_path / "ray")

    single_config = replace(config, batch_size=16)
    model = build()
    windows = user_windows(dataset.train_sequences(), config.max_len)
    optimizers = optimizers_for(model, single_config, len(windows))
    generator = torch.Generator().manual_seed(0)
    single = np.array([train_item_lm_epoch(model, windows, optimizers, single_config, generator)
                       for _ in range(6)])  # fmt: skip
    losses = np.array([row["loss"] for row in parallel.log])
    assert len(windows) == 60 and parallel.workers == 2 and len(losses) == 6
    assert losses[-1] < 0.7 * losses[0] and single[-1] < 0.7 * single[0], (losses, single)
    assert np.max(np.abs(losses - single) / single) < 0.05, (losses, single)
    assert [row["replica_gap"] for row in parallel.log] == [0.0] * 6
    assert all(row["sequences_per_s"] > 0 for row in parallel.log)
