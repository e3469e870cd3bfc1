"""The `mmsrarec` command line. Each command group lives in its own module.

A command's module (and what it imports: torch, transformers, ...) loads only when that
command runs, so `mmsrarec --help` and usage errors answer in well under a second.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

from mmsrarec.cli.common import (
    ConfigOpt,
    DatabaseOpt,
    DataDirOpt,
    DatasetOpt,
    ModelOpt,
    RunDirOpt,
    ScorerOpt,
    run_guarded,
)

# name -> (module, attribute: a Typer group or a command function, the one-line help that
# `mmsrarec --help` lists; tests check it is the first line of the command's own help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("mmsrarec.cli.data", "app", "Prepare datasets and show their statistics."),
    "train": (
        "mmsrarec.cli",
        "train_app",
        "Train the summarizer (GRPO), the yes/no scorer and the LLM recommender.",
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
    "score": (
        "mmsrarec.cli.score",
        "score",
        "Rank the catalog after each user's whole history (their own items left out); the "
        "first seed's model. Same rows, same order, with or without `--ray`.",
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
    "feedback": (
        "mmsrarec.cli.live",
        "feedback_app",
        "Store feedback events (as `POST /api/feedback`).",
    ),
    "items": ("mmsrarec.cli.live", "items_app", "Add catalogue items (as `POST /api/items`)."),
    "serve": (
        "mmsrarec.cli.serve",
        "serve",
        "Serve the chat page (/), the run inspector (/inspect/THREAD) and the API (schema: "
        "/api/openapi.json).",
    ),
}


# `train`'s own commands: the adapters' options take their defaults from TRL's config classes
# (slow to import), the LLM recommender's do not.
TRAIN_COMMANDS: dict[str, tuple[str, str, str]] = {
    "summarizer": (
        "mmsrarec.cli.train",
        "summarizer",
        "GRPO of the keyword summarizer on training items with the critic's rewards.",
    ),
    "recommender": (
        "mmsrarec.cli.train_llm",
        "yes_no_recommender",
        "Listwise training of the yes/no scorer with hybrid item tokens (resumes after a kill).",
    ),
    "llm-recommender": (
        "mmsrarec.cli.train_llm",
        "llm_recommender",
        "Sequence-level training of the hybrid-token LLM recommender (resumes after a kill).",
    ),
}


def load_command(name: str, table: dict[str, tuple[str, str, str]] = COMMANDS) -> _click.Command:
    """The click command `name` of `table`, importing its module."""
    module, attribute, _ = table[name]
    target = getattr(importlib.import_module(module), attribute)
    if not isinstance(target, typer.Typer):
        target = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        target.command(name)(getattr(importlib.import_module(module), attribute))
    command = typer.main.get_command(target)
    command.name = name
    return command


class LazyCommands(TyperGroup):
    """A group that lists `table` from their one-line help and loads a command on use."""

    table = COMMANDS
    listing = False

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(self.table)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in self.table:
            return None
        if self.listing:
            return TyperCommand(name=cmd_name, help=self.table[cmd_name][2])
        return load_command(cmd_name, self.table)

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


class LazyTrainCommands(LazyCommands):
    table = TRAIN_COMMANDS


train_app = typer.Typer(cls=LazyTrainCommands, no_args_is_help=True, add_completion=False)


@train_app.callback(invoke_without_command=True)
def train(
    ctx: typer.Context,
    from_store: Annotated[
        bool,
        typer.Option(
            "--from-store",
            help="Retrain the served scorer on the data plus the stored feedback and items into "
            "a new model version, which servers swap in (resumes after a kill).",
        ),
    ] = False,
    scorer: ScorerOpt = None,
    force: Annotated[
        bool, typer.Option(help="With --from-store: retrain even when nothing new arrived.")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Train the summarizer (GRPO), the yes/no scorer and the LLM recommender."""
    if ctx.invoked_subcommand is not None:
        return
    if not from_store:
        typer.echo(ctx.get_help())
        return
    from mmsrarec.cli.live import from_store as retrain

    retrain(scorer, force, config, data_dir, run_dir, dataset, model, database_url)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    sys.exit(run_guarded(app))
