"""`mmsrarec train llm-recommender|recommender`: the hybrid-token LLM recommender and the
yes/no scorer (in a module of their own, so that their options load without TRL, which the
summarizer's options need)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from mmsrarec.cli.common import (
    CacheDirOpt,
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    ModelOpt,
    RunDirOpt,
    console,
    settings_from,
)

CpuOpt = Annotated[bool, typer.Option("--cpu", help="Train on CPU even when a GPU is present.")]


def llm_recommender(
    variant: Annotated[
        str, typer.Option(help="`llm-recommender` or one of its controls (see `evaluate`).")
    ] = "llm-recommender",
    seeds: Annotated[int, typer.Option(min=1, help="Train seeds 0 .. N-1.")] = 1,
    layers: Annotated[int | None, typer.Option(help="Decoder layers kept.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs.")] = None,
    k_similar: Annotated[int | None, typer.Option(help="Retrieval tokens (0 = off).")] = None,
    cpu: CpuOpt = False,
    config: ConfigOpt = None,
    cache_dir: CacheDirOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Sequence-level training of the hybrid-token LLM recommender (resumes after a kill).

    Omitted options keep the variant's settings (`ItemLMConfig`); SASRec of the same seed is
    trained first when missing. Writes `<run_dir>/llm-recommender/<dataset>/<variant>/seed<k>/`.
    """
    import torch

    from mmsrarec.errors import ConfigError
    from mmsrarec.recommenders.methods import LLM_VARIANTS, build_recommender

    if variant not in LLM_VARIANTS:
        raise ConfigError(f"unknown `--variant` `{variant}`; known: {', '.join(LLM_VARIANTS)}")
    settings = settings_from(config, cache_dir=cache_dir, data_dir=data_dir, run_dir=run_dir,
                             dataset=dataset, model=model)  # fmt: skip
    from mmsrarec.data import load_dataset

    data = load_dataset(settings.dataset_dir)
    overrides = {"layers": layers, "max_epochs": epochs, "k_similar": k_similar}
    for seed in range(seeds):
        recommender = build_recommender(variant, settings)
        changed = {k: v for k, v in overrides.items() if v is not None}
        recommender.config = dataclasses.replace(recommender.config, **changed)
        if cpu:
            recommender.device = torch.device("cpu")
        recommender.fit(data, seed)
        meta = recommender.meta
        console.print(
            f"{variant} seed {seed}: best epoch {meta['best_epoch']}, validation NDCG@5 "
            f"{meta['best_valid_ndcg5']:.4f}, {recommender.save_dir(seed)}",
            highlight=False,
        )


def yes_no_recommender(
    seeds: Annotated[int, typer.Option(min=1, help="Train seeds 0 .. N-1.")] = 1,
    examples: Annotated[int | None, typer.Option(min=1, help="Training lists.")] = None,
    negatives: Annotated[int | None, typer.Option(min=1, help="Unseen items per list.")] = None,
    k_similar: Annotated[
        int | None, typer.Option(min=0, help="Similar users in prompts (0 = none).")
    ] = None,
    n_history: Annotated[int | None, typer.Option(min=1, help="History items in prompts.")] = None,
    keywords: Annotated[
        str | None, typer.Option(help="Keyword source: none, base, tuned or tuned:<tag>.")
    ] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="AdamW learning rate.")] = None,
    eval_every: Annotated[
        int | None, typer.Option(min=1, help="Lists between evaluations.")
    ] = None,
    valid_users: Annotated[int | None, typer.Option(min=1, help="Validation users.")] = None,
    cpu: CpuOpt = False,
    config: ConfigOpt = None,
    cache_dir: CacheDirOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Listwise training of the yes/no scorer with hybrid item tokens (resumes after a kill).

    The paper's prompt scorer; the kept weights are those of the best validation NDCG@5.
    Omitted options keep `YesNoConfig`'s defaults; SASRec of the same seed is trained first
    when missing. Writes `<run_dir>/yes-no/<dataset>/llm-yes-no/seed<k>/`, which the graph's
    `mmsrarec-yes-no` variants and `evaluate --method llm-yes-no` load
    (`--keywords base` trains `llm-yes-no-base`, which `mmsrarec-yes-no-no-rl` loads).
    """
    from mmsrarec.data import load_dataset
    from mmsrarec.recommenders.yes_no import YesNoRecommender
    from mmsrarec.training.yes_no_trainer import YesNoConfig

    settings = settings_from(config, cache_dir=cache_dir, data_dir=data_dir, run_dir=run_dir,
                             dataset=dataset, model=model)  # fmt: skip
    overrides = {"examples": examples, "negatives": negatives, "k_similar": k_similar,
                 "n_history": n_history, "keywords": keywords, "lr": lr,
                 "eval_every": eval_every, "n_valid_users": valid_users}  # fmt: skip
    train_config = YesNoConfig(**{k: v for k, v in overrides.items() if v is not None})
    data = load_dataset(settings.dataset_dir)
    for seed in range(seeds):
        recommender = YesNoRecommender(settings, train_config, device="cpu" if cpu else None)
        recommender.fit(data, seed)
        meta = recommender.meta
        console.print(
            f"llm-yes-no seed {seed}: best after {meta['best_examples']} lists, validation "
            f"NDCG@5 {meta['best_valid_ndcg5']:.4f}, {recommender.save_dir(seed)}",
            highlight=False,
        )
