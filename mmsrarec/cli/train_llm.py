"""`mmsrarec train llm-recommender`: the hybrid-token LLM recommender (in a module of its own,
so that its options load without TRL, which the adapters' options need)."""

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
