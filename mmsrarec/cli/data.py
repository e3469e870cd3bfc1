"""`mmsrarec data ...`: prepare and describe datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mmsrarec.cli.common import (
    CacheDirOpt,
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    console,
    plain_settings,
    settings_from,
)
from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.data.prepare import NEGATIVES_PER_USER, NEGATIVES_SEED
from mmsrarec.data.stats import dataset_stats
from mmsrarec.data.synth import DEFAULTS, SynthConfig, synthesize

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


@app.command()
def synth(
    users: Annotated[int, typer.Option("--users", min=1, help="Users to generate.")],
    items: Annotated[int, typer.Option("--items", min=30, help="Catalog size.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of every draw.")] = 0,
    topics: Annotated[int, typer.Option(min=1, help="Topic clusters.")] = DEFAULTS["topics"],
    mean_length: Annotated[
        float, typer.Option(help="Mean interactions per user (at least 3 each).")
    ] = DEFAULTS["mean_length"],
    drift: Annotated[
        float, typer.Option(help="Probability of moving to another topic at each step.")
    ] = DEFAULTS["drift"],
    out: Annotated[
        Path | None, typer.Option(help="Parent folder. Default: `<cache_dir>/synthetic`.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Write again even if present.")] = False,
    config: ConfigOpt = None,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Write a SYNTHETIC dataset (JSONL) for cost measurements only, never accuracy claims."""
    settings = plain_settings(config, cache_dir=cache_dir)
    spec = SynthConfig(users, items, seed, topics, mean_length, drift)
    folder, written = synthesize(spec, out or settings.cache_dir / "synthetic", force=force)
    state = "written" if written else "already there (use --force to write again)"
    console.print(f"synthetic data (cost measurements only) {state}: {folder}")
    console.print(f"next: mmsrarec data prepare --dataset {folder}")
