"""`mmsrarec train summarizer|recommender|llm-recommender`: the LLM's trained parts.

`llm-recommender` trains the hybrid-token recommender (sequence-level, all-item softmax).
The other two are LoRA adapters for the paper's two LLM roles (keyword summarizer, yes/no
scorer).

Both write to `<run_dir>/train/<role>/<dataset>/` (checkpoints, `log_history.jsonl`, a PNG of
the curves, `report.json`, and `adapter/`, which `mmsrarec evaluate --method mmsrarec` loads)
and resume from the last checkpoint there. They run unchanged on CPU, one GPU, or several
under `accelerate launch -m mmsrarec.cli.train ...`.
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
from mmsrarec.cli.train_llm import llm_recommender
from mmsrarec.training.adapters import RECOMMENDER, SUMMARIZER, train_dir
from mmsrarec.training.config import RecommenderTrainConfig, SummarizerTrainConfig

app = typer.Typer(help="Train the summarizer (GRPO) and the recommender (SFT) adapters.",
                  no_args_is_help=True)  # fmt: skip
app.command("llm-recommender")(llm_recommender)

ResumeOpt = Annotated[bool, typer.Option(help="Resume from the last checkpoint in the run dir.")]


def field_option(config: type, name: str, flag: str, help: str | None = None, **extra: Any) -> Any:
    """A typer option bound to field `name` of a training config: its default is the field's
    default (the one place it is written) and its help the field's `help` unless given."""
    spec = next(f for f in dataclasses.fields(config) if f.name == name)
    default = spec.default_factory() if spec.default is dataclasses.MISSING else spec.default
    return typer.Option(default, flag, help=help or spec.metadata.get("help"), **extra)


S, R = SummarizerTrainConfig, RecommenderTrainConfig


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


@app.command()
def recommender(
    steps: int = field_option(R, "max_steps", "--steps", "Optimizer steps (-1: run `epochs`)."),
    epochs: float = field_option(R, "num_train_epochs", "--epochs"),
    users: int = field_option(R, "n_users", "--users"),
    positions: int = field_option(R, "positions_per_user", "--positions"),
    negatives: int = field_option(R, "negatives", "--negatives"),
    valid_users: int = field_option(R, "n_valid_users", "--valid-users"),
    k_similar: int = field_option(R, "k_similar", "--k-similar", min=0),
    eval_steps: int = field_option(
        R, "eval_steps", "--eval-steps", "Steps between evaluations and checkpoints."
    ),  # fmt: skip
    batch_size: int = field_option(R, "per_device_train_batch_size", "--batch-size"),
    learning_rate: float = field_option(R, "learning_rate", "--learning-rate"),
    max_length: int = field_option(R, "max_length", "--max-length"),
    resume: ResumeOpt = True,
    cpu: bool = field_option(R, "use_cpu", "--cpu", "Train on CPU even when a GPU is present."),
    seed: int = field_option(R, "seed", "--seed"),
    config: ConfigOpt = None,
    cache_dir: CacheDirOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Multi-task LoRA SFT of the recommender (4 instruction types) with early stopping."""
    settings = settings_from(config, cache_dir=cache_dir, data_dir=data_dir, run_dir=run_dir,
                             dataset=dataset, model=model)  # fmt: skip
    from mmsrarec.data import load_dataset
    from mmsrarec.graph.trained import inference_prompt_parts
    from mmsrarec.models import ModelCache
    from mmsrarec.training.recommender import train_recommender

    train_config = RecommenderTrainConfig(
        output_dir=str(train_dir(settings, RECOMMENDER)), max_steps=steps,
        num_train_epochs=epochs, n_users=users, positions_per_user=positions,
        negatives=negatives, n_valid_users=valid_users, k_similar=k_similar,
        eval_steps=eval_steps, save_steps=eval_steps, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, max_length=max_length, use_cpu=cpu, seed=seed,
    )  # fmt: skip
    data = load_dataset(settings.dataset_dir)
    keywords_for, similar_for = inference_prompt_parts(
        settings, data, train_config.k_similar, train_config.seed
    )
    llm = ModelCache(settings).llm()  # a copy of its own: LoRA is added to this one
    report = train_recommender(train_config, data, llm, keywords_for, similar_for, resume=resume)
    console.print_json(json.dumps(report))


def main() -> None:
    """Entry point for `accelerate launch -m mmsrarec.cli.train summarizer ...`."""
    raise SystemExit(run_guarded(app))


if __name__ == "__main__":
    main()
