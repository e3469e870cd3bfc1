"""`mmsrarec recommend` and `mmsrarec summarize`: the graph for one user, and the catalog pass."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from mmsrarec.cli.common import (
    ConfigOpt,
    DatabaseOpt,
    DataDirOpt,
    DatasetOpt,
    ModelOpt,
    RayOpt,
    RunDirOpt,
    ScorerOpt,
    WorkersOpt,
    console,
    err_console,
    graph_run,
    model_option,
    settings_from,
)
from mmsrarec.data import load_dataset
from mmsrarec.errors import ConfigError
from mmsrarec.nodes.context import GraphSettings


class CandidateChoice(StrEnum):
    """Which items the graph ranks."""

    all = "all"
    sampled = "sampled"


class HistoryChoice(StrEnum):
    """Which part of a user's history the graph reads."""

    full = "full"
    test = "test"
    valid = "valid"


G = GraphSettings


def print_update(node: str, values: dict[str, Any]) -> None:
    """Streamed node update, one dim line on stderr."""
    err_console.print(f"[dim]· {node} -> {', '.join(sorted(values))}[/]", highlight=False)


def recommend(
    user: Annotated[
        str | None, typer.Option("--user", help="Raw user id (of the data or of live feedback).")
    ] = None,
    history: Annotated[
        str | None,
        typer.Option(
            "--history",
            metavar="ID,...",
            help="Item ids, oldest first, for a user the data does not know.",
        ),
    ] = None,
    top: int = model_option(G, "top_k", "--top", "How many items to show."),
    candidates: Annotated[
        CandidateChoice,
        typer.Option(
            help="`all`: the whole catalogue; `sampled`: the evaluation's frozen 1 + 20 "
            "candidates (with `--stage test|valid`)."
        ),
    ] = CandidateChoice.all,
    stage: Annotated[
        HistoryChoice,
        typer.Option(
            help="`full`: the whole history (data, then live feedback); `test` / `valid`: "
            "what the evaluation shows at that position."
        ),
    ] = HistoryChoice.full,
    exclude_seen: Annotated[
        bool, typer.Option("--exclude-seen/--include-seen", help="Leave out the history's items.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with the thread id).")] = (
        False
    ),
    stream: Annotated[bool, typer.Option(help="Print each node's update as it finishes.")] = True,
    thread: Annotated[str | None, typer.Option(help="Thread id (default: a new one).")] = None,
    n_history: int = model_option(G, "n_history", "--n-history"),
    k: int = model_option(G, "k_similar", "--k"),
    max_rounds: int = model_option(G, "max_rounds", "--max-rounds"),
    scorer: ScorerOpt = None,
    debias: float = model_option(G, "debias", "--debias", metavar="GAMMA"),
    evidence_window: int = model_option(G, "evidence_window", "--evidence-window"),
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    run_dir: RunDirOpt = None,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Run the graph for one user: ranked items with scores, evidence and the trace's thread.

    By default the whole catalogue is ranked after the user's whole history (the prepared
    data, then feedback stored by the API or `mmsrarec feedback add`), as the API's
    `GET /api/recommend/{user}` does; `--json` prints the API's answer.
    """
    if (user is None) == (history is None):
        raise typer.BadParameter("give one of them", param_hint="`--user` / `--history`")
    sampled = candidates == CandidateChoice.sampled
    if sampled and (stage == HistoryChoice.full or user is None):
        raise ConfigError("`--candidates sampled` needs `--user` and `--stage test` or `valid`")
    items = [part.strip() for part in (history or "").split(",") if part.strip()]
    if history is not None and not items:
        raise ConfigError("`--history` holds no item id: give `--history ID,ID,...`")
    evaluation = stage.value if stage != HistoryChoice.full else G.model_fields["stage"].default
    run = graph_run(
        scorer, n_history=n_history, k_similar=k, max_rounds=max_rounds, stage=evaluation,
        debias=debias, evidence_window=evidence_window,
    )  # fmt: skip
    settings = settings_from(
        config,
        data_dir=data_dir,
        run_dir=run_dir,
        dataset=dataset,
        model=model,
        database_url=database_url,
    )
    from mmsrarec.serving import RecommendationService
    from mmsrarec.serving.writes import LiveWriter

    prepared = load_dataset(settings.dataset_dir)  # bad ids fail before any model loads
    if user is not None and stage != HistoryChoice.full:
        items = [prepared.item(i).item_id for i in prepared.history(user, stage.value)]
    elif user is not None and not _known_user(settings, prepared, user):
        raise ConfigError(f"unknown user id `{user}`: give its items with `--history`")
    if any(item_id not in prepared.item_index for item_id in items):
        LiveWriter.from_settings(settings).check_items(items)  # maybe an item added live
    service = RecommendationService.from_settings(settings, run)
    service.on_update = print_update if stream and not as_json else None
    if items:
        result = service.recommend_history(
            items,
            top,
            exclude_seen=exclude_seen,
            user_id=user or "anonymous",
            frozen=sampled,
            thread_id=thread,
        )
    else:
        result = service.recommend_user(user, top, exclude_seen, thread_id=thread)
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return
    print_result(result)


def _known_user(settings: Any, prepared: Any, user: str) -> bool:
    """In the prepared data or in the stored feedback (read without creating a store)."""
    from mmsrarec.serving.writes import LiveWriter

    if user in prepared.sequences:
        return True
    return LiveWriter.exists(settings) and bool(
        LiveWriter.from_settings(settings).store.feedback_of(user)
    )


def print_result(result: dict[str, Any]) -> None:
    """The ranked items as a table, the neighbours and the thread to inspect."""
    table = Table(
        title=f"user {result['user_id']} · {result['model']} {result['model_version']} · "
        f"thread {result['thread_id']}",
        show_lines=False,
    )
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
    from mmsrarec.models.adapters import (
        SUMMARIZER,
        OnAdapter,
        adapter_dir,
        attach_adapters,
        tuned_summarizer_name,
    )
    from mmsrarec.summarization import KeywordCache, LLMSummarizer, summarize_catalog
    from mmsrarec.summarization.cache import keyword_cache_path
    from mmsrarec.summarization.prompts import PROMPT_VERSION

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
        judge = OnAdapter(
            RewardCritic(models.encoder(), llm, collab=CollabTargets.from_dataset(data)),
            llm.model,
            None,
        )
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
