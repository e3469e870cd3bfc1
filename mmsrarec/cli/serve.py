"""`mmsrarec serve`: the chat page, the run inspector and the JSON API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmsrarec.cli.common import (
    ChromaOpt,
    ConfigOpt,
    DatabaseOpt,
    DataDirOpt,
    DatasetOpt,
    ModelOpt,
    RunDirOpt,
    ScorerOpt,
    console,
    graph_run,
    settings_from,
)
from mmsrarec.errors import ConfigError

CriticOpt = Annotated[
    bool, typer.Option("--critic/--no-critic", help="Run the critic loop on new summaries.")
]
SimilarOpt = Annotated[
    int, typer.Option("--k-similar", min=0, max=50, help="Similar users to retrieve (0 = off).")
]
MemoryOpt = Annotated[
    bool, typer.Option("--in-memory", help="Keep conversations in memory, not in the run dir.")
]


def build_service(
    config: Path | None,
    dataset: str | None,
    model: str | None,
    data_dir: Path | None,
    run_dir: Path | None,
    critic: bool,
    k_similar: int,
    in_memory: bool,
    scorer: str | None = None,
    database_url: str | None = None,
    chroma_url: str | None = None,
):
    """The settings and the chat service on the CLI's flags (shared by `serve` and `chat`)."""
    from mmsrarec.chat.factory import build_chat_service

    settings = settings_from(
        config,
        dataset=dataset,
        model=model,
        data_dir=data_dir,
        run_dir=run_dir,
        database_url=database_url,
        chroma_url=chroma_url,
    )
    console.print("loading the dataset, models and indexes (the first start builds them)…")
    service = build_chat_service(
        settings, graph_run(scorer, k_similar=k_similar), critic=critic, in_memory=in_memory
    )
    return settings, service


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    public: Annotated[
        bool, typer.Option("--public", help="Allow a non-loopback --host (no TLS, no login).")
    ] = False,
    critic: CriticOpt = True,
    k_similar: SimilarOpt = 3,
    in_memory: MemoryOpt = False,
    scorer: ScorerOpt = None,
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    database_url: DatabaseOpt = None,
    chroma_url: ChromaOpt = None,
) -> None:
    """Serve the chat page (/), the run inspector (/inspect/THREAD) and the API
    (schema: /api/openapi.json)."""
    if host not in ("127.0.0.1", "localhost", "::1") and not public:
        raise ConfigError(f"`--host {host}` is not loopback: add `--public` if you mean it")
    import uvicorn

    from mmsrarec.serving.schedule import Timers
    from mmsrarec.web.app import create_app
    from mmsrarec.web.auth import ApiKeys
    from mmsrarec.web.sessions import SessionStore

    settings = settings_from(
        config,
        dataset=dataset,
        model=model,
        data_dir=data_dir,
        run_dir=run_dir,
        database_url=database_url,
        chroma_url=chroma_url,
    )
    console.print("loading the dataset, models and indexes (the first start builds them)…")
    chat, api = build_server(settings, graph_run(scorer, k_similar=k_similar), critic, in_memory)
    timers = Timers(api)
    sessions = SessionStore() if in_memory else SessionStore.from_settings(settings)
    keys = ApiKeys.from_settings(settings)
    console.print(
        f"chat on http://{host}:{port}/, API on http://{host}:{port}/api/ "
        f"({len(keys.digests)} API key(s); Ctrl-C to stop)",
        highlight=False,
    )
    app = create_app(chat, sessions, settings.server, recommendations=api, keys=keys)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        timers.close()
        api.close()


def build_server(settings, run, critic: bool, in_memory: bool):
    """The recommendation API's service and the chat on one set of graph parts: the chat
    follows the API's swaps (a retrained model; new items, rebuilt in the background), and
    the keywords the catalogue lacks are written in the background (a progress bar)."""
    from mmsrarec.chat.factory import build_chat_service, open_dataset
    from mmsrarec.database import Tables, sqlite_checkpointer
    from mmsrarec.graph.factory import build_context
    from mmsrarec.models import ModelCache
    from mmsrarec.serving import LiveStore, RecommendationService

    models = ModelCache(settings)
    graph = build_context(settings, open_dataset(settings), models, run, critic=critic)
    memory = {"store": LiveStore(Tables.sqlite(None)), "checkpointer": sqlite_checkpointer(None)}
    api = RecommendationService(settings, graph, background=True, **(memory if in_memory else {}))
    chat = build_chat_service(
        settings, run, critic=critic, in_memory=in_memory, graph=api.served.context, models=models
    )
    api.listeners.append(ChatFollower(chat, settings, models))
    dataset = api.served.context.dataset
    have = api.served.context.keywords.get_many(dataset.items)
    missing = [item for item in dataset.items if item.item_id not in have]
    if missing and settings.server.background_keywords:
        console.print(
            f"{len(missing)} of {dataset.n_items} items have no keywords yet: writing "
            "them in the background (progress on stderr)",
            highlight=False,
        )
        api.backfill.request(missing)
    return chat, api


class ChatFollower:
    """Keeps the chat on the API's graph parts: a new model at once, new items through a
    rebuilt chat context (catalogue index, titles, SQL filter) on a worker thread."""

    def __init__(self, chat, settings, models) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.chat, self.settings, self.models = chat, settings, models
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="chat-rebuild")

    def __call__(self, graph) -> None:
        import dataclasses

        if graph.dataset.n_items == self.chat.context.dataset.n_items:
            self.chat.context = dataclasses.replace(self.chat.context, graph=graph)
        else:
            self.pool.submit(self._rebuild, graph)

    def _rebuild(self, graph) -> None:
        import logging

        from mmsrarec.chat.factory import build_chat_context

        try:
            settings = self.chat.context.settings
            self.chat.context = build_chat_context(self.settings, graph, self.models, settings)
        except Exception:  # the chat keeps its catalogue; the log says why
            logging.getLogger(__name__).exception("the chat could not take in the new items")
