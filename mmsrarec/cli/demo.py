"""`mmsrarec demo`: the main job on embedded defaults."""

from __future__ import annotations

from mmsrarec.cli.common import ConfigOpt, console, settings_from
from mmsrarec.data import prepare_dataset


def demo(config: ConfigOpt = None) -> None:
    """Prepare ML-100K, train SASRec, print the baseline tables, run the graph for a few users."""
    settings = settings_from(config)
    folder, _ = prepare_dataset("ml-100k", settings.datasets_dir)
    console.print(f"[bold]1/3 data[/] ML-100K prepared in {folder}")
