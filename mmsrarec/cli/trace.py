"""`mmsrarec trace ...`: list, show, export and verify the traces of graph runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.tree import Tree

from mmsrarec.cli.common import ConfigOpt, RunDirOpt, console, settings_from
from mmsrarec.errors import DataError
from mmsrarec.storage import atomic_write_json
from mmsrarec.trace import read_trace_file, verify_trace

app = typer.Typer(
    help="Inspect the traces of graph runs (stored per thread).", no_args_is_help=True
)

ThreadArg = Annotated[str, typer.Argument(help="Thread id (printed by `mmsrarec recommend`).")]


def _store(config: Path | None, run_dir: Path | None):
    """The recommendation graph's checkpoint store (run dir's SQLite or `database_url`)."""
    from mmsrarec.database import open_checkpointer

    settings = settings_from(config, run_dir=run_dir)
    if settings.database_url is None and not settings.graph_db.exists():
        raise DataError(f"no graph runs in `{settings.run_dir}` yet: run `mmsrarec recommend`")
    return open_checkpointer(settings, "recommend")


def _records(thread: str, config: Path | None, run_dir: Path | None) -> list[dict[str, Any]]:
    from mmsrarec.graph.graph import thread_trace

    return thread_trace(_store(config, run_dir), thread)


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_tree(thread: str, records: list[dict[str, Any]]) -> Tree:
    """A readable tree: one branch per node run, with inputs, outputs, timing and hash."""
    broken = verify_trace(records)
    status = "[green]chain verified[/]" if broken is None else f"[red]broken at {broken}[/]"
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
    """Thread ids in the run dir's checkpoint store, most recent first."""
    from mmsrarec.graph.graph import list_threads

    for thread in list_threads(_store(config, run_dir)):
        console.print(thread, highlight=False)


@app.command()
def show(thread: ThreadArg, config: ConfigOpt = None, run_dir: RunDirOpt = None) -> None:
    """Print a thread's trace as a tree."""
    console.print(render_tree(thread, _records(thread, config, run_dir)))


@app.command()
def export(
    thread: ThreadArg,
    out: Annotated[Path, typer.Option("--out", help="JSON file to write.")],
    config: ConfigOpt = None,
    run_dir: RunDirOpt = None,
) -> None:
    """Write a thread's trace as JSON (verifiable with `mmsrarec trace verify`)."""
    records = _records(thread, config, run_dir)
    atomic_write_json(out, {"thread_id": thread, "records": records})
    console.print(f"{len(records)} records written to {out}")


@app.command()
def verify(file: Annotated[Path, typer.Argument(help="A file from `trace export`.")]) -> None:
    """Check the hash chain; exit 2 when any record was changed, removed or reordered."""
    records = read_trace_file(file)
    broken = verify_trace(records)
    if broken is not None:
        node = records[broken].get("node", "?")
        raise DataError(f"record {broken} (`{node}`) of `{file}` fails verification: tampered")
    console.print(f"{len(records)} records verified")
