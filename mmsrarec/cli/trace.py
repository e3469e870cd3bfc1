"""`mmsrarec trace ...`: list, show, export and verify the traces of graph and chat runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mmsrarec.cli.common import ConfigOpt, DataDirOpt, RunDirOpt, console, plain_settings
from mmsrarec.errors import DataError

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from rich.tree import Tree

    from mmsrarec.config import Settings

app = typer.Typer(
    help="Inspect the traces of graph and chat runs (stored per thread).", no_args_is_help=True
)

ThreadArg = Annotated[
    str, typer.Argument(help="Thread id (printed by `mmsrarec recommend`, or a chat's).")
]


def _stores(settings: Settings) -> list[tuple[str, BaseCheckpointSaver]]:
    """The checkpoint stores that exist: the recommendation graph's, then the chat's (SQLite
    files in the run dir, or the schemas of `database_url`)."""
    from mmsrarec.chat.state import with_state_types
    from mmsrarec.database import open_checkpointer

    shared = settings.database_url is not None  # PostgreSQL: both stores always exist
    stores = []
    if shared or settings.graph_db.exists():
        stores.append(("graph", open_checkpointer(settings, "recommend")))
    if shared or settings.chat_db.exists():
        stores.append(("chat", with_state_types(open_checkpointer(settings, "chat"))))
    if not stores:
        raise DataError(
            f"no graph or chat runs in `{settings.run_dir}` yet: run `mmsrarec recommend` "
            "or `mmsrarec chat`"
        )
    return stores


def _records(thread: str, settings: Settings) -> list[dict[str, Any]]:
    return _run(thread, settings)[0]


def _run(thread: str, settings: Settings) -> tuple[list[dict[str, Any]], str | None]:
    """The thread's records, and the error its last run stopped on (None: it finished)."""
    from mmsrarec.database import thread_config, thread_error, thread_trace

    for _, store in _stores(settings):
        if store.get_tuple(thread_config(thread)) is not None:
            return thread_trace(store, thread), thread_error(store, thread)
    raise DataError(
        f"no thread `{thread}` in `{settings.graph_db}` or `{settings.chat_db}`: "
        "see `mmsrarec trace list`"
    )


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_tree(thread: str, records: list[dict[str, Any]], error: str | None = None) -> Tree:
    """A readable tree: one branch per node run, with inputs, outputs, timing and hash. A
    run that stopped on an error is marked failed (with the error), whatever its chain."""
    from rich.tree import Tree

    from mmsrarec.trace import verify_trace

    broken = verify_trace(records)
    status = "[green]chain verified[/]" if broken is None else f"[red]broken at {broken}[/]"
    if error is not None:
        status = f"[red]failed: {escape(error)}[/] · {status}"
    elif not records:
        status = "[red]no records: the run stopped before its first node finished[/]"
    tree = Tree(f"[bold]thread {thread}[/] · {len(records)} records · {status}")
    for index, record in enumerate(records):
        model = f" · {record['model']}" if record.get("model") else ""
        branch = tree.add(
            f"[bold cyan]{index}. {record['node']}[/] · {record['seconds']:.3f}s{model}"
            f" · [dim]{record['hash'][:12]}[/]"
        )
        for key, value in record.get("inputs", {}).items():
            branch.add(f"[dim]in[/]  {key} = {_short(value)}", highlight=False)
        for key, value in record.get("outputs", {}).items():
            branch.add(f"[dim]out[/] {key} = {_short(value)}", highlight=False)
    return tree


@app.command("list")
def list_(config: ConfigOpt = None, run_dir: RunDirOpt = None) -> None:
    """Thread ids of the graph's runs, then of the chat's, most recent first."""
    from mmsrarec.database import thread_ids

    settings = plain_settings(config, run_dir=run_dir)
    lines = [
        f"{thread}  [dim]{kind}[/]"
        for kind, _ in _stores(settings)
        for thread in thread_ids(settings, "recommend" if kind == "graph" else "chat")
    ]
    console.print("\n".join(lines), highlight=False)  # one print: thousands of threads


@app.command()
def show(thread: ThreadArg, config: ConfigOpt = None, run_dir: RunDirOpt = None) -> None:
    """Print a thread's trace as a tree."""
    settings = plain_settings(config, run_dir=run_dir)
    console.print(render_tree(thread, *_run(thread, settings)))


@app.command()
def export(
    thread: ThreadArg,
    out: Annotated[Path, typer.Option("--out", help="JSON file to write.")],
    config: ConfigOpt = None,
    run_dir: RunDirOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write a thread's trace as JSON, chained with the data dir's key and ending in a head
    record (verifiable with `mmsrarec trace verify`)."""
    from mmsrarec.storage import atomic_write_json, read_or_create_secret
    from mmsrarec.trace import seal_trace

    if not out.parent.is_dir():
        raise DataError(f"folder `{out.parent}` of `--out` does not exist: create it first")
    settings = plain_settings(config, run_dir=run_dir, data_dir=data_dir)
    records = _records(thread, settings)
    try:
        key = read_or_create_secret(settings.trace_key)
    except OSError as exc:
        raise DataError(
            f"cannot read or create the trace key `{settings.trace_key}`: {exc.strerror}"
        ) from None
    atomic_write_json(out, seal_trace(records, thread, key))
    console.print(f"{len(records)} records written to {out}")


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="A file from `trace export`.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Check the keyed hash chain and the head; exit 2 when any record was changed, removed
    or reordered, the thread id changed, or the chain was not made with this data dir."""
    from mmsrarec.trace import check_sealed, read_trace_file

    settings = plain_settings(config, data_dir=data_dir)
    payload = read_trace_file(file)
    try:
        key = settings.trace_key.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"no trace key at `{settings.trace_key}`: `{file}` was not exported with this "
            "data dir (`--data-dir`)"
        ) from None
    except OSError as exc:
        raise DataError(
            f"cannot read the trace key `{settings.trace_key}`: {exc.strerror}"
        ) from None
    count = check_sealed(payload, key, str(file))
    console.print(f"{count} records verified (keyed chain and head)")
