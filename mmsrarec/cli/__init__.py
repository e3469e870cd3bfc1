"""The `mmsrarec` command line. Each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from mmsrarec.cli import data as data_cli
from mmsrarec.cli import trace as trace_cli
from mmsrarec.cli import train as train_cli
from mmsrarec.cli.chat import chat
from mmsrarec.cli.common import run_guarded
from mmsrarec.cli.demo import demo
from mmsrarec.cli.evaluate import evaluate
from mmsrarec.cli.graph import graph
from mmsrarec.cli.recommend import recommend, summarize
from mmsrarec.cli.score import score
from mmsrarec.cli.serve import serve

app = typer.Typer(
    name="mmsrarec",
    help="LLM-based sequential recommendation (MMSRARec) as a LangGraph state machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(train_cli.app, name="train")
app.command()(demo)
app.command()(evaluate)
app.command()(score)
app.command()(summarize)
app.command()(recommend)
app.command()(graph)
app.add_typer(trace_cli.app, name="trace")
app.command()(chat)
app.command()(serve)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    sys.exit(run_guarded(app))
