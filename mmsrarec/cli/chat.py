"""`mmsrarec chat`: talk to the recommender in the terminal."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

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
)
from mmsrarec.cli.serve import CriticOpt, MemoryOpt, SimilarOpt, build_service
from mmsrarec.errors import DataError

HELP = "Commands: /new (new conversation), /trace (this conversation's trace), /quit."


def show(out: dict[str, Any]) -> None:
    """Print a turn's reply and its recommendations."""
    if not out["recommendations"]:
        console.print(out["reply"], highlight=False)
        return
    table = Table("#", "title", "score", "why", title=out["reply"].split("\n")[0], expand=True)
    for n, rec in enumerate(out["recommendations"], start=1):
        table.add_row(str(n), rec["title"], f"{rec['score']:.2f}", rec["evidence"])
    console.print(table)


def chat(
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Send one message, print, exit.")
    ] = None,
    thread: Annotated[
        str | None, typer.Option("--thread", help="Resume this conversation (thread id).")
    ] = None,
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
    """Chat: say what you liked or want ("loved Alien, want something tense")."""
    from mmsrarec.cli.trace import render_tree

    _, service = build_service(
        config, dataset, model, data_dir, run_dir, critic, k_similar, in_memory, scorer,
        database_url, chroma_url,
    )  # fmt: skip
    thread = thread or service.new_thread()
    if message is not None:
        show(service.chat(thread, message))
        console.print(f"[dim]thread {thread}[/]", highlight=False)
        return
    console.print(f"thread {thread}. {HELP}", highlight=False)
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if text in ("/quit", "/exit"):
            break
        if text == "/new":
            thread = service.new_thread()
            console.print(f"new conversation: thread {thread}", highlight=False)
        elif text == "/trace":
            try:
                console.print(render_tree(thread, service.trace(thread)))
            except DataError:
                console.print("no turns yet")
        elif text:
            try:
                show(service.chat(thread, text))
            except DataError as exc:  # e.g. bytes that are not UTF-8: say so, keep chatting
                console.print(f"error: {exc}", highlight=False)
        else:
            console.print(HELP)
