"""The `mmsrarec` command line. Each command group lives in its own module.

A command's module (and what it imports: torch, transformers, ...) loads only when that
command runs, so `mmsrarec --help` and usage errors answer in well under a second.
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

from mmsrarec.cli.common import run_guarded

# name -> (module, attribute: a Typer group or a command function, the one-line help that
# `mmsrarec --help` lists; tests check it is the first line of the command's own help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("mmsrarec.cli.data", "app", "Prepare datasets and show their statistics."),
    "train": (
        "mmsrarec.cli.train",
        "app",
        "Train the summarizer (GRPO) and the recommender (SFT) adapters.",
    ),
    "demo": (
        "mmsrarec.cli.demo",
        "demo",
        "Prepare ML-100K, train SASRec and the LLM recommender, print the accuracy tables, "
        "run the graph for a few users.",
    ),
    "evaluate": (
        "mmsrarec.cli.evaluate",
        "evaluate",
        "Evaluate methods over seeds and print mean ± std beside random and most-popular.",
    ),
    "summarize": (
        "mmsrarec.cli.recommend",
        "summarize",
        "Summarize the catalog into keywords (cached: a second run costs nothing; resumable).",
    ),
    "recommend": (
        "mmsrarec.cli.recommend",
        "recommend",
        "Run the graph for one user: ranked items with scores, evidence and the trace's thread.",
    ),
    "graph": (
        "mmsrarec.cli.graph",
        "graph",
        "Show the recommendation graph (nodes and edges, including the critic's loop).",
    ),
    "trace": (
        "mmsrarec.cli.trace",
        "app",
        "Inspect the traces of graph and chat runs (stored per thread).",
    ),
    "chat": (
        "mmsrarec.cli.chat",
        "chat",
        'Chat: say what you liked or want ("loved Alien, want something tense").',
    ),
    "serve": (
        "mmsrarec.cli.serve",
        "serve",
        "Serve the chat page (/), the run inspector (/inspect/THREAD) and the API (/api/docs).",
    ),
}


def load_command(name: str) -> _click.Command:
    """The click command `name` of `COMMANDS`, importing its module."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if not isinstance(target, typer.Typer):
        target = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        target.command(name)(getattr(importlib.import_module(module), attribute))
    command = typer.main.get_command(target)
    command.name = name
    return command


class LazyCommands(TyperGroup):
    """The top-level group: lists `COMMANDS` from their one-line help, loads one on use."""

    listing = False

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if self.listing:
            return TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][2])
        return load_command(cmd_name)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    name="mmsrarec",
    cls=LazyCommands,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root() -> None:
    """LLM-based sequential recommendation (MMSRARec) as a LangGraph state machine."""


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    sys.exit(run_guarded(app))
