"""`mmsrarec feedback add`, `mmsrarec items add` and `mmsrarec train --from-store`: live data
from the command line, into the same store as the API's writes (no model loads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmsrarec.cli.common import (
    ConfigOpt,
    DatabaseOpt,
    DataDirOpt,
    DatasetOpt,
    RunDirOpt,
    console,
    plain_settings,
)
from mmsrarec.serving.writes import DEFAULT_KIND

KeyOpt = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="Makes a retry safe: a second run stores nothing."),
]

feedback_app = typer.Typer(no_args_is_help=True)
items_app = typer.Typer(no_args_is_help=True)


@feedback_app.callback()
def feedback() -> None:
    """Store feedback events (as `POST /api/feedback`)."""


@items_app.callback()
def items() -> None:
    """Add catalogue items (as `POST /api/items`)."""


def _print(written) -> None:
    from mmsrarec.serving.store import as_json

    row = json.dumps(as_json(written.row), ensure_ascii=False)
    console.print(
        row + (" (replayed: stored before)" if written.replayed else ""),
        highlight=False,
        soft_wrap=True,
    )


@feedback_app.command("add")
def add_feedback(
    user: Annotated[str, typer.Option("--user", help="User id (new ones are fine).")],
    item: Annotated[str, typer.Option("--item", help="Item id of the catalogue.")],
    timestamp: Annotated[float, typer.Option(help="Seconds since the epoch.")],
    kind: Annotated[str, typer.Option(help="A label; every kind counts.")] = DEFAULT_KIND,
    idempotency_key: KeyOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Store one interaction; the user's next recommendations read it."""
    from mmsrarec.serving.writes import LiveWriter

    settings = plain_settings(
        config, data_dir=data_dir, run_dir=run_dir, dataset=dataset, database_url=database_url
    )
    writer = LiveWriter.from_settings(settings)
    _print(writer.add_feedback(user, item, timestamp, kind, idempotency_key))


@items_app.command("add")
def add_item(
    title: Annotated[str, typer.Option(help="The item's title (not blank).")],
    description: Annotated[str, typer.Option(help="What it is.")] = "",
    image: Annotated[
        Path | None, typer.Option(help="An image file (PNG, JPEG, GIF or WebP).")
    ] = None,
    item_id: Annotated[
        str | None, typer.Option("--item-id", help="Your id for it; default: a new one.")
    ] = None,
    idempotency_key: KeyOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Add an item; servers serve it within `server.sync_every_s`, scored from its text."""
    from mmsrarec.errors import DataError
    from mmsrarec.serving.writes import LiveWriter

    settings = plain_settings(
        config, data_dir=data_dir, run_dir=run_dir, dataset=dataset, database_url=database_url
    )
    try:
        data = image.read_bytes() if image is not None else None
    except OSError as exc:
        raise DataError(f"cannot read `--image {image}`: {exc.strerror}") from None
    writer = LiveWriter.from_settings(settings)
    _print(writer.add_item(title, description, data, item_id, idempotency_key))


def from_store(
    scorer: str | None,
    force: bool,
    config: Path | None,
    data_dir: Path | None,
    run_dir: Path | None,
    dataset: str | None,
    model: str | None,
    database_url: str | None,
) -> None:
    """`mmsrarec train --from-store`: retrain on the data plus the stored feedback and items,
    publish the new version (servers swap it in)."""
    from mmsrarec.cli.common import settings_from
    from mmsrarec.nodes.context import GraphSettings
    from mmsrarec.serving import retrain

    settings = settings_from(
        config,
        data_dir=data_dir,
        run_dir=run_dir,
        dataset=dataset,
        model=model,
        database_url=database_url,
    )
    name = scorer or GraphSettings.model_fields["scorer"].default
    version = retrain(settings, name, force=force)
    if version is None:
        console.print(
            f"nothing new since the last version of {name}: nothing retrained "
            "(`--force` retrains anyway)",
            highlight=False,
        )
        return
    console.print(
        f"{name} {version.label} published: {version.path} (feedback up to "
        f"{version.feedback_seq}, items up to {version.items_seq})",
        highlight=False,
    )
