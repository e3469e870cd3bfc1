"""Options and helpers shared by every command."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mmsrarec.config import Settings, apply_offline_env, load_settings
from mmsrarec.errors import MmsrarecError
from mmsrarec.prompt_text import encoding_problem

# Rich assumes 80 columns when output is not a terminal (a log, a pipe, CI), which truncates
# the metric tables; 160 keeps all seven sampled metrics readable there.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class StageChoice(StrEnum):
    """Which held-out position is predicted."""

    test = "test"
    valid = "valid"


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (keys = setting names).")
]
CacheDirOpt = Annotated[Path | None, typer.Option(help="Cache dir [env MMSRAREC_CACHE_DIR].")]
DataDirOpt = Annotated[Path | None, typer.Option(help="Prepared datasets [env MMSRAREC_DATA_DIR].")]
RunDirOpt = Annotated[Path | None, typer.Option(help="Run outputs [env MMSRAREC_RUN_DIR].")]
DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", help="Prepared dataset name [env MMSRAREC_DATASET].")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="LLM preset, HF id or local path [env MMSRAREC_MODEL]."),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL for threads and sessions (postgresql://user@host:port/db); "
        "default: SQLite in the run dir [env MMSRAREC_DATABASE_URL].",
    ),
]
ChromaOpt = Annotated[
    str | None,
    typer.Option(
        "--chroma-url",
        help="Chroma server (http://host:port); default: embedded [env MMSRAREC_CHROMA_URL].",
    ),
]
ScorerOpt = Annotated[
    str | None,
    typer.Option(
        "--scorer",
        help="Recommend-node scorer: `mmsrarec` (fused LLM recommender, the default), "
        "`llm-recommender`, another catalog method, or `yes-no` (the paper's prompt).",
    ),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="local|auto|ADDRESS",
        help="Shard users over Ray actors: `local` starts Ray here, `auto` joins `ray start`'s "
        "cluster, or `ray://host:port` [env MMSRAREC_RAY_ADDRESS].",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Ray actors; default: cluster CPUs / threads [env MMSRAREC_RAY_WORKERS].",
    ),
]
SeedsOpt = Annotated[
    int | None, typer.Option("--seeds", min=1, help="Use the first N seeds (0, 1, 2, ...).")
]


def plain_settings(config: Path | None = None, **flags: Any) -> Settings:
    """Settings with CLI flags on top and the offline env applied (no torch: commands that
    only read files stay fast)."""
    settings = load_settings(config, **flags)
    apply_offline_env(settings)
    return settings


def settings_from(config: Path | None = None, seeds: int | None = None, **flags: Any) -> Settings:
    """Settings with CLI flags on top, offline env applied and torch threads set."""
    if seeds is not None:
        flags["seeds"] = list(range(seeds))
    settings = plain_settings(config, **flags)
    import torch  # after the offline env, which hub libraries read at import

    torch.set_num_threads(settings.threads)
    return settings


def run_guarded(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run the Typer app; an `MmsrarecError` becomes `error: <message>` and exit code 2."""
    for n, arg in enumerate(sys.argv[1:] if args is None else args, start=1):
        if (problem := encoding_problem(arg)) is not None:  # bytes that are not UTF-8
            err_console.print(
                f"[bold red]error:[/] argument {n} is not valid UTF-8 text ({problem})",
                highlight=False,
            )
            return 2
    try:
        app(args=args, standalone_mode=False)
    except MmsrarecError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:
        usage = _usage_error(exc)
        if usage is None:
            raise
        return usage
    return 0


def _usage_error(exc: Exception) -> int | None:
    """Exit code for a click usage error (typer vendors its own click), else None. A usage
    error is one line, `error: ...` naming the command's `--help`, instead of click's block."""
    import click
    from typer._click import exceptions as typer_click

    if isinstance(exc, (click.exceptions.NoArgsIsHelpError, typer_click.NoArgsIsHelpError)):
        exc.show()  # the help itself, as `--help` prints it
        return exc.exit_code
    if isinstance(exc, (click.exceptions.UsageError, typer_click.UsageError)):
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split())
        err_console.print(f"[bold red]error:[/] {message}{where}", highlight=False, soft_wrap=True)
        return exc.exit_code
    if isinstance(exc, (click.exceptions.ClickException, typer_click.ClickException)):
        exc.show()
        return exc.exit_code
    # typer's vendored click has no `Abort` of its own in every version
    typer_abort = getattr(typer_click, "Abort", click.exceptions.Abort)
    if isinstance(exc, (click.exceptions.Abort, typer_abort)):
        return 1
    return None


def graph_run(scorer: str | None = None, **fields: Any):
    """`GraphSettings` from CLI flags; an omitted `--scorer` keeps the settings' default."""
    from pydantic import ValidationError

    from mmsrarec.errors import ConfigError
    from mmsrarec.nodes.context import GraphSettings

    try:
        return GraphSettings(**fields, **({"scorer": scorer} if scorer is not None else {}))
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise ConfigError(f"`--{problem['loc'][0]}`: {problem['msg']}") from None


def model_option(model: Any, name: str, flag: str, help: str | None = None, **extra: Any) -> Any:
    """A typer option bound to field `name` of a pydantic settings model: its default, its
    bounds (`ge`/`le`) and its help come from the field, the one place they are written."""
    spec = model.model_fields[name]
    bounds: dict[str, Any] = {}
    for constraint in spec.metadata:
        if getattr(constraint, "ge", None) is not None:
            bounds["min"] = constraint.ge
        if getattr(constraint, "le", None) is not None:
            bounds["max"] = constraint.le
    return typer.Option(spec.default, flag, help=help or spec.description, **bounds, **extra)
