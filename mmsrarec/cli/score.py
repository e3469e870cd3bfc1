"""`mmsrarec score`: every chosen user's next items, locally or sharded over Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmsrarec.cli.common import (
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    RayOpt,
    RunDirOpt,
    WorkersOpt,
    console,
    settings_from,
)
from mmsrarec.data import load_dataset
from mmsrarec.errors import ConfigError
from mmsrarec.evaluation.batch_scoring import read_users, score_users, write_rows_gz
from mmsrarec.evaluation.distributed import score_users_on_ray
from mmsrarec.evaluation.methods import build_method, check_methods
from mmsrarec.evaluation.protocols import EXPORT_TOP
from mmsrarec.recommenders.methods import CATALOG_SCORERS


def score(
    users: Annotated[
        str, typer.Option("--users", help="`all`, or a file of raw user ids (one a line).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Rankings to write (gzipped JSONL, e.g. r.jsonl.gz).")
    ],
    method: Annotated[
        str,
        typer.Option("--method", "-m", help=f"Catalog method: {', '.join(CATALOG_SCORERS)}."),
    ] = "mmsrarec",
    top: Annotated[int, typer.Option(min=1, help="Items kept per user.")] = EXPORT_TOP,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
) -> None:
    """Rank the catalog after each user's whole history (their own items left out); the
    first seed's model. Same rows, same order, with or without `--ray`."""
    check_methods([method])
    if method not in CATALOG_SCORERS:
        raise ConfigError(f"`--method {method}` ranks candidates only; use a catalog method")
    settings = settings_from(
        config,
        data_dir=data_dir,
        run_dir=run_dir,
        dataset=dataset,
        ray_address=ray,
        ray_workers=workers,
    )
    data = load_dataset(settings.dataset_dir)
    chosen = read_users(users, data)
    seed = settings.seeds[0]
    if settings.ray_address is not None:
        rows = score_users_on_ray(method, settings, chosen, seed, top)
    else:
        recommender = build_method(method, settings)
        recommender.fit(data, seed)
        rows = score_users(recommender, data, chosen, top)
    write_rows_gz(out, rows)
    console.print(f"{len(rows)} users scored by `{method}` (seed {seed}), written to {out}")
