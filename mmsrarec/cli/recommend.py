"""`mmsrarec recommend` and `mmsrarec summarize`: the graph for one user, and the catalog pass."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from mmsrarec.cli.common import (
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    ModelOpt,
    RayOpt,
    RunDirOpt,
    ScorerOpt,
    StageChoice,
    WorkersOpt,
    console,
    err_console,
    graph_run,
    settings_from,
)
from mmsrarec.data import load_dataset
from mmsrarec.errors import ConfigError


class CandidateChoice(StrEnum):
    """Which items the graph ranks."""

    sampled = "sampled"
    all = "all"


StageOpt = Annotated[
    StageChoice, typer.Option(help="Serve the `test` or `valid` position's history.")
]
NHistoryOpt = Annotated[int, typer.Option(min=1, max=50, help="History items in the prompt.")]
KOpt = Annotated[int, typer.Option("--k", min=0, max=50, help="Similar users (0 = off).")]
RoundsOpt = Annotated[int, typer.Option(min=1, max=10, help="Summarizer rounds per item.")]


def print_update(node: str, values: dict[str, Any]) -> None:
    """Streamed node update, one dim line on stderr."""
    err_console.print(f"[dim]· {node} -> {', '.join(sorted(values))}[/]", highlight=False)


def recommend(
    user: Annotated[str, typer.Option("--user", help="Raw user id of the prepared dataset.")],
    top: Annotated[int, typer.Option("--top", min=1, help="How many items to show.")] = 10,
    candidates: Annotated[
        CandidateChoice,
        typer.Option(help="`sampled`: the frozen 1 + 20 candidates; `all`: every unseen item."),
    ] = CandidateChoice.sampled,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with the thread id).")] = (
        False
    ),
    stream: Annotated[bool, typer.Option(help="Print each node's update as it finishes.")] = True,
    thread: Annotated[str | None, typer.Option(help="Thread id (default: a new one).")] = None,
    stage: StageOpt = StageChoice.test,
    n_history: NHistoryOpt = 5,
    k: KOpt = 3,
    max_rounds: RoundsOpt = 3,
    scorer: ScorerOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Run the graph for one user: ranked items with scores, evidence and the trace's thread."""
    run = graph_run(
        scorer, n_history=n_history, k_similar=k, max_rounds=max_rounds, stage=stage.value
    )
    settings = settings_from(
        config, data_dir=data_dir, run_dir=run_dir, dataset=dataset, model=model
    )
    from mmsrarec.graph.session import GraphSession

    data = load_dataset(settings.dataset_dir)
    data.history(user, run.stage)  # an unknown user fails here, before any model loads
    result = GraphSession(settings, run, dataset=data).recommend(
        user,
        all_items=candidates == CandidateChoice.all,
        top=top,
        thread=thread,
        on_update=print_update if stream and not as_json else None,
    )
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return
    table = Table(title=f"user {user} · thread {result['thread_id']}", show_lines=False)
    for column in ("#", "item", "title", "score", "evidence"):
        table.add_column(column, overflow="fold")
    for rank, rec in enumerate(result["recommendations"], start=1):
        table.add_row(
            str(rank), rec["item_id"], rec["title"], f"{rec['score']:.3f}", rec["evidence"]
        )
    console.print(table)
    for neighbour in result["similar_users"]:
        console.print(
            f"similar user {neighbour['user_id']} ({neighbour['similarity']:.2f}) chose next "
            f"{neighbour['next_title']}: {', '.join(neighbour['keywords'])}",
            highlight=False,
        )
    console.print(f"trace: mmsrarec trace show {result['thread_id']}", highlight=False)


def summarize(
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N catalog items.")
    ] = None,
    critic: Annotated[bool, typer.Option(help="Score each summary with the critic.")] = False,
    tuned: Annotated[
        bool, typer.Option(help="Summarize with the GRPO adapter of `mmsrarec train summarizer`.")
    ] = False,
    tag: Annotated[str, typer.Option(help="With --tuned: the adapter of `--tag T`.")] = "",
    batch_size: Annotated[int, typer.Option(min=1, help="Items per model call.")] = 8,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Summarize the catalog into keywords (cached: a second run costs nothing; resumable).

    With `--ray`, batches go to Ray actors that send them to `llm_server_url` side by side.
    """
    from mmsrarec.critic import CollabTargets, RewardCritic
    from mmsrarec.models import ModelCache
    from mmsrarec.summarization import KeywordCache, LLMSummarizer, summarize_catalog
    from mmsrarec.summarization.cache import keyword_cache_path
    from mmsrarec.summarization.prompts import PROMPT_VERSION
    from mmsrarec.training.adapters import (
        SUMMARIZER,
        OnAdapter,
        adapter_dir,
        attach_adapters,
        tuned_summarizer_name,
    )

    settings = settings_from(config, data_dir=data_dir, dataset=dataset, model=model,
                             ray_address=ray, ray_workers=workers)  # fmt: skip
    data = load_dataset(settings.dataset_dir)
    items = data.items[:limit] if limit else data.items
    if settings.ray_address is not None:
        if tuned or critic:
            raise ConfigError("`--ray` summarizes with the server's model: drop `--tuned` and "
                              "`--critic` (they run in-process)")  # fmt: skip
        _summarize_on_ray(settings, items, batch_size)
        return
    models = ModelCache(settings)
    llm, name, adapter = models.llm(), settings.model, None
    if tuned:
        name = tuned_summarizer_name(settings, tag)
        llm = attach_adapters(models.llm(), {SUMMARIZER: adapter_dir(settings, SUMMARIZER, tag)})
        adapter = SUMMARIZER
    summarizer = OnAdapter(LLMSummarizer(llm, batch_size=batch_size), llm.model, adapter, name)
    judge = None
    if critic:  # the base weights judge, with the collaborative reward from training data
        judge = OnAdapter(RewardCritic(models.encoder(), llm,
                                       collab=CollabTargets.from_dataset(data)),
                          llm.model, None)  # fmt: skip
    with KeywordCache(keyword_cache_path(settings), name, PROMPT_VERSION) as cache:
        stats = summarize_catalog(items, summarizer, cache, judge, batch_size=batch_size)
        sample = cache.get_many(items[:3])
    _report(stats, items, sample)


def _summarize_on_ray(settings, items, batch_size: int) -> None:
    from mmsrarec.summarization import KeywordCache, summarize_catalog
    from mmsrarec.summarization.cache import keyword_cache_path
    from mmsrarec.summarization.fan_out import ray_summarizers
    from mmsrarec.summarization.prompts import PROMPT_VERSION

    with (
        ray_summarizers(settings, batch_size) as (name, fan_out, _),
        KeywordCache(keyword_cache_path(settings), name, PROMPT_VERSION) as cache,
    ):
        stats = summarize_catalog(items, None, cache, batch_size=batch_size, fan_out=fan_out)
        sample = cache.get_many(items[:3])
    _report(stats, items, sample)


def _report(stats, items, sample) -> None:
    console.print(
        f"{stats['summarized']} summarized, {stats['cached']} already cached, "
        f"{stats['seconds']:.1f}s, mean {stats['mean_keywords']:.1f} keywords"
        + (f", mean reward {stats['mean_reward']:.3f}" if "mean_reward" in stats else ""),
        highlight=False,
    )
    for item in items[:3]:
        console.print(f"  {item.title}: {', '.join(sample.get(item.item_id, []))}")
