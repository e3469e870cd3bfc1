"""`mmsrarec data ...`: prepare and describe datasets."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from mmsrarec.cli.common import ConfigOpt, DataDirOpt, DatasetOpt, console, settings_from
from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.data.prepare import NEGATIVES_PER_USER, NEGATIVES_SEED
from mmsrarec.data.stats import dataset_stats

app = typer.Typer(help="Prepare datasets and show their statistics.", no_args_is_help=True)


@app.command()
def prepare(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="`ml-100k` (from the installed recbole package) or a folder with "
            "`catalog.jsonl` + `interactions.jsonl` or RecBole `*.inter` + `*.item` files.",
        ),
    ] = "ml-100k",
    negatives: Annotated[
        int, typer.Option(min=1, help="Frozen negatives per user and stage.")
    ] = NEGATIVES_PER_USER,
    negatives_seed: Annotated[int, typer.Option(help="Seed of the negatives draw.")] = (
        NEGATIVES_SEED
    ),
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if prepared.")] = False,
    name: Annotated[
        str | None,
        typer.Option(
            help="Name of the prepared dataset (what `--dataset` and `MMSRAREC_DATASET` then "
            "select); default: the folder's name (`ml-100k` for the built-in)."
        ),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Sort chronologically, split leave-one-out and freeze the negatives (idempotent: a
    source whose files changed since is refused, saying which)."""
    settings = settings_from(config, data_dir=data_dir)
    folder, built = prepare_dataset(
        dataset,
        settings.datasets_dir,
        negatives=negatives,
        seed=negatives_seed,
        force=force,
        name=name,
    )
    state = "prepared" if built else "already prepared (use --force to rebuild)"
    console.print(
        f"{folder.name}: {state} in {folder}; use it with `--dataset {folder.name}`",
        highlight=False,
    )


@app.command()
def stats(
    dataset: DatasetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Users, items, interactions and the sequence-length distribution."""
    settings = settings_from(config, data_dir=data_dir, dataset=dataset)
    numbers = dataset_stats(load_dataset(settings.dataset_dir))
    if as_json:
        console.print_json(json.dumps(numbers))
        return
    table = Table(title=f"dataset {settings.dataset}")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in numbers.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
