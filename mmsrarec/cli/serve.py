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

    from mmsrarec.web.app import create_app
    from mmsrarec.web.sessions import SessionStore

    settings, service = build_service(
        config, dataset, model, data_dir, run_dir, critic, k_similar, in_memory, scorer,
        database_url, chroma_url,
    )  # fmt: skip
    sessions = SessionStore() if in_memory else SessionStore.from_settings(settings)
    console.print(f"chat on http://{host}:{port}/  (Ctrl-C to stop)", highlight=False)
    app = create_app(service, sessions, server=settings.server)
    uvicorn.run(app, host=host, port=port, log_level="info")
