"""`mmsrarec train summarizer|recommender|llm-recommender`: the LLM's trained parts.

- `summarizer`: GRPO of the keyword summarizer's LoRA adapter (TRL), written to
  `<run_dir>/train/summarizer/<dataset>/` (checkpoints, `log_history.jsonl`, curves,
  `report.json`, `adapter/`), resumed from the last checkpoint there; it runs unchanged on
  CPU, one GPU, or several under `accelerate launch -m mmsrarec.cli.train ...`.
- `recommender`: the paper's yes/no scorer, trained listwise with hybrid item tokens
  (`cli/train_llm.py`).
- `llm-recommender`: the hybrid-token recommender (sequence-level, all-item softmax).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import typer

from mmsrarec.cli.common import (
    CacheDirOpt,
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    ModelOpt,
    RunDirOpt,
    console,
    run_guarded,
    settings_from,
)
from mmsrarec.cli.train_llm import llm_recommender, yes_no_recommender
from mmsrarec.models.adapters import SUMMARIZER, train_dir
from mmsrarec.training.config import SummarizerTrainConfig

app = typer.Typer(help="Train the summarizer (GRPO), the yes/no scorer and the LLM recommender.",
                  no_args_is_help=True)  # fmt: skip
app.command("llm-recommender")(llm_recommender)
app.command("recommender")(yes_no_recommender)

ResumeOpt = Annotated[bool, typer.Option(help="Resume from the last checkpoint in the run dir.")]


def field_option(config: type, name: str, flag: str, help: str | None = None, **extra: Any) -> Any:
    """A typer option bound to field `name` of a training config: its default is the field's
    default (the one place it is written) and its help the field's `help` unless given."""
    spec = next(f for f in dataclasses.fields(config) if f.name == name)
    default = spec.default_factory() if spec.default is dataclasses.MISSING else spec.default
    return typer.Option(default, flag, help=help or spec.metadata.get("help"), **extra)


S = SummarizerTrainConfig


@app.command()
def summarizer(
    steps: int = field_option(S, "max_steps", "--steps", "Optimizer steps (-1: run `epochs`)."),
    max_minutes: float = field_option(S, "max_minutes", "--max-minutes", min=0.0),
    items: int = field_option(S, "n_items", "--items"),
    heldout: int = field_option(S, "n_heldout", "--heldout"),
    generations: int = field_option(S, "num_generations", "--generations"),
    batch_size: int = field_option(S, "per_device_train_batch_size", "--batch-size"),
    learning_rate: float = field_option(S, "learning_rate", "--learning-rate"),
    collab_weight: float = field_option(S, "delta_collab", "--collab-weight", min=0.0),
    tag: Annotated[
        str, typer.Option(help="Write to `train/summarizer-<tag>/` (e.g. an ablation).")
    ] = "",
    resume: ResumeOpt = True,
    cpu: bool = field_option(S, "use_cpu", "--cpu", "Train on CPU even when a GPU is present."),
    seed: int = field_option(S, "seed", "--seed"),
    config: ConfigOpt = None,
    cache_dir: CacheDirOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
) -> None:
    """GRPO of the keyword summarizer on training items with the critic's rewards."""
    settings = settings_from(config, cache_dir=cache_dir, data_dir=data_dir, run_dir=run_dir,
                             dataset=dataset, model=model)  # fmt: skip
    from mmsrarec.data import load_dataset
    from mmsrarec.models import ModelCache
    from mmsrarec.training.summarizer import load_reward_llm, train_summarizer

    train_config = SummarizerTrainConfig(
        output_dir=str(train_dir(settings, SUMMARIZER, tag)), max_steps=steps, n_items=items,
        n_heldout=heldout, num_generations=generations, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, delta_collab=collab_weight, use_cpu=cpu, seed=seed,
        max_minutes=max_minutes,
    )  # fmt: skip
    data = load_dataset(settings.dataset_dir)
    models = ModelCache(settings)
    report = train_summarizer(train_config, data, models.llm(), models.encoder(),
                              load_reward_llm(settings.model, settings), resume=resume)  # fmt: skip
    console.print_json(json.dumps(report))


def main() -> None:
    """Entry point for `accelerate launch -m mmsrarec.cli.train summarizer ...`."""
    raise SystemExit(run_guarded(app))


if __name__ == "__main__":
    main()
