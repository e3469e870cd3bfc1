"""Catalogue summarisation fanned out over Ray actors, each a client of the OpenAI-compatible
LLM server (`llm_server_url`: vLLM in production, which batches the concurrent requests).

Every actor renders the prompts with the local tokenizer's chat template (as the in-process
summarizer does, `LLMSummarizer(server=...)`) and sends them to the server; the driver hands
out batches, takes them back as they finish, and writes each to the keyword cache at once
(`summarize_catalog`): a killed run keeps every finished batch and the next run sends only
the items still missing. The cache key is the server's model (`server:<name>`), so the graph,
the LLM recommender and `mmsrarec summarize` without `--ray` read the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mmsrarec.cluster import connect, worker_count
from mmsrarec.config import Settings, apply_offline_env
from mmsrarec.data import Item
from mmsrarec.errors import ConfigError
from mmsrarec.summarization.catalog import FanOut
from mmsrarec.summarization.llm_summarizer import LLMSummarizer


class SummarizerActor:
    """One Ray actor: the local tokenizer's prompts, the server's answers."""

    def __init__(self, settings: dict[str, Any], batch_size: int) -> None:
        import torch

        from mmsrarec.models.llm import load_llm
        from mmsrarec.models.server import CompletionServer

        self.settings = Settings(**settings)
        apply_offline_env(self.settings)
        torch.set_num_threads(self.settings.threads)
        server = CompletionServer(str(self.settings.llm_server_url))
        llm = load_llm(self.settings.model, self.settings)  # renders the prompts only
        self.summarizer = LLMSummarizer(llm, batch_size=batch_size, server=server)
        self.items = 0

    def name(self) -> str:
        return self.summarizer.name

    def summarize(self, index: int, items: list[Item]) -> tuple[int, dict[str, list[str]]]:
        self.items += len(items)
        return index, self.summarizer.summarize(items, {})

    def count(self) -> int:
        """Items this actor summarized."""
        return self.items


@contextmanager
def ray_summarizers(settings: Settings, batch_size: int) -> Iterator[tuple[str, FanOut, list]]:
    """(the summarizer's cache name, a `FanOut` over the actors, the actors); they are killed
    on exit.

    Raises:
        ConfigError: no `llm_server_url` or no `ray_address`, or Ray is missing.
    """
    if settings.llm_server_url is None:
        raise ConfigError("summarizing on Ray sends the prompts to `llm_server_url`: set it "
                          "(MMSRAREC_LLM_SERVER_URL=http://host:port/v1)")  # fmt: skip
    if settings.ray_address is None:
        raise ConfigError("no `ray_address` set: give `--ray local|auto|ray://host:port`")
    ray = connect(settings.ray_address)
    from ray.util import ActorPool

    remote = ray.remote(num_cpus=settings.threads)(SummarizerActor)
    dump = settings.model_dump()
    actors = [remote.remote(dump, batch_size) for _ in range(worker_count(ray, settings))]

    def fan_out(batches: list[list[Item]]) -> Iterator[tuple[list[Item], dict[str, list[str]]]]:
        pool = ActorPool(actors)
        calls = pool.map_unordered(lambda actor, job: actor.summarize.remote(*job),
                                   list(enumerate(batches)))  # fmt: skip
        for index, keywords in calls:
            yield batches[index], keywords

    try:
        names = set(ray.get([actor.name.remote() for actor in actors]))
        yield names.pop(), fan_out, actors
    finally:
        for actor in actors:
            ray.kill(actor)
