"""`mmsrarec evaluate`: methods over seeds, beside the random and most-popular rows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mmsrarec.cli.common import (
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    RayOpt,
    RunDirOpt,
    SeedsOpt,
    StageChoice,
    WorkersOpt,
    console,
    settings_from,
)
from mmsrarec.config import Settings
from mmsrarec.data import Stage, load_dataset
from mmsrarec.data.coldstart import RUN_SUBDIR, ColdRule, Split, new_releases
from mmsrarec.errors import ConfigError
from mmsrarec.evaluation.harness import (
    build_report,
    rankings_paths,
    results_table,
    run_harness,
    write_rankings,
    write_report,
)
from mmsrarec.evaluation.methods import METHODS, REFERENCES, check_methods
from mmsrarec.evaluation.protocols import Protocol


def run_evaluation(
    settings: Settings,
    methods: list[str],
    protocol: Protocol | str = Protocol.sampled,
    stage: Stage = "test",
    json_path: Path | None = None,
    rankings_path: Path | None = None,
    split: Split | str = Split.standard,
    cold: str | None = None,
) -> dict[str, Any]:
    """Evaluate `methods` (plus the reference rows) on the prepared `settings.dataset`.

    Prints the table, writes the optional exports, and returns the `--json` report.
    Rankings are written for each requested method (for the reference rows when none is
    requested): to `rankings_path` itself for one method, else `<stem>.<method><suffix>`.
    On the new-releases split (`cold`: the rule, default the dataset's own), models are
    trained under `<run_dir>/new-releases/` and the table adds the cold- and warm-target users.
    """
    check_methods(methods)
    protocol = Protocol(protocol)
    dataset = load_dataset(settings.dataset_dir)
    if Split(split) == Split.new_releases:
        dataset = new_releases(dataset, ColdRule.parse(cold) if cold else None)
        settings = settings.model_copy(update={"run_dir": settings.run_dir / RUN_SUBDIR})
    elif cold or protocol == Protocol.shelf:
        what = "`--cold` chooses" if cold else "`--protocol shelf` ranks"
        raise ConfigError(f"{what} the new items of `--split new-releases`: add it")
    results = run_harness(methods, dataset, settings, protocol, stage)
    n_users = len(results[0].first.users)
    rule = f" · cold: {dataset.cold_rule} ({len(dataset.cold)} items)" if dataset.cold else ""
    title = (
        f"{dataset.name} · {protocol.value} · {stage} · {n_users} users · "
        f"seeds {', '.join(map(str, settings.seeds))}{rule}"
    )
    console.print(results_table(results, title))
    rankings: dict[str, Path] = {}
    if rankings_path is not None:
        exported = list(dict.fromkeys(methods)) or list(REFERENCES)
        rankings = rankings_paths(rankings_path, exported)
        by_name = {result.method: result for result in results}
        for name, path in rankings.items():
            write_rankings(path, by_name[name].first, dataset)
            console.print(f"rankings of `{name}` (seed {settings.seeds[0]}) written to {path}")
    report = build_report(results, dataset, protocol, stage, settings.seeds, rankings)
    if json_path is not None:
        write_report(json_path, report)
        console.print(f"metrics written to {json_path}")
    return report


def evaluate(
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            "-m",
            help=f"Method to evaluate, repeatable: {', '.join(METHODS)}. "
            "The random and most-popular rows are always shown.",
        ),
    ] = None,
    protocol: Annotated[
        Protocol,
        typer.Option(
            help="`sampled`: target + frozen negatives; `full`: whole catalog; `shelf` "
            "(new-releases split): a cold target among the cold items only."
        ),
    ] = Protocol.sampled,
    split: Annotated[
        Split,
        typer.Option(
            help="`new-releases`: the items chosen by `--cold` have no interaction before the "
            "test; reports cold-target and warm-target users apart."
        ),
    ] = Split.standard,
    cold: Annotated[
        str | None,
        typer.Option(
            help="New items of `--split new-releases`: `FIELD>=VALUE` (a catalog field, e.g. "
            "`release_year>=1997`, the ML-100K default), `first_seen>=TIMESTAMP` or `ids:FILE`."
        ),
    ] = None,
    stage: Annotated[StageChoice, typer.Option(help="Predict the test or validation item.")] = (
        StageChoice.test
    ),
    seeds: SeedsOpt = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the metrics report (JSON) here.")
    ] = None,
    rankings: Annotated[
        Path | None,
        typer.Option(
            help="Write per-user rankings (JSONL, first seed) here; full protocol: the "
            "target plus the top 100 items."
        ),
    ] = None,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
) -> None:
    """Evaluate methods over seeds and print mean ± std beside random and most-popular."""
    methods = list(method or [])
    check_methods(methods)  # before anything slow
    settings = settings_from(
        config,
        seeds=seeds,
        data_dir=data_dir,
        run_dir=run_dir,
        dataset=dataset,
        ray_address=ray,
        ray_workers=workers,
    )
    run_evaluation(settings, methods, protocol, stage.value, json_path, rankings, split, cold)
