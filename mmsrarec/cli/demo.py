"""`mmsrarec demo`: the main job on embedded defaults."""

from __future__ import annotations

from typing import Annotated

import typer

from mmsrarec.cli.common import ConfigOpt, RunDirOpt, SeedsOpt, console, settings_from
from mmsrarec.data import prepare_dataset
from mmsrarec.nodes.context import GraphSettings

DEMO_USERS = ("1", "2", "3")
QUICK = ("llm-recommender-quick", "mmsrarec-quick")  # the shorter schedule's LLM and fusion


def demo(
    users: Annotated[
        list[str] | None, typer.Option("--user", help="Users to recommend for (repeatable).")
    ] = None,
    seeds: SeedsOpt = 1,
    full: Annotated[
        bool,
        typer.Option(
            "--full/--quick",
            help="`--full`: the committed table's schedule (the LLM recommender up to 8 epochs, "
            "most of half an hour on 2 cores); `--quick`: 2 epochs, so the LLM rows differ "
            "from the README's table.",
        ),
    ] = False,
    config: ConfigOpt = None,
    run_dir: RunDirOpt = None,
) -> None:
    """Prepare ML-100K, train SASRec and the LLM recommender, print the accuracy tables,
    run the graph for a few users.

    Both protocols' tables (sampled 1 + 20 and full ranking) come first: item-kNN, SASRec, the
    collaborative ensemble, the LLM recommender (hybrid item tokens on the packaged model,
    trained once, then reloaded) and the fused system. Then the recommendation graph, whose
    recommend node uses the fused system, ranks each user's frozen candidates and prints the
    recommendations with their evidence and one run's trace.
    """
    from mmsrarec.cli.evaluate import run_evaluation
    from mmsrarec.cli.recommend import print_update
    from mmsrarec.cli.trace import render_tree
    from mmsrarec.graph.graph import thread_trace
    from mmsrarec.graph.session import GraphSession

    settings = settings_from(config, seeds=seeds, run_dir=run_dir, dataset="ml-100k")
    folder, _ = prepare_dataset("ml-100k", settings.datasets_dir)
    console.print(f"[bold]1/3 data[/] ML-100K prepared in {folder}")

    console.print(
        "[bold]2/3 accuracy[/] (SASRec and the LLM recommender train once per seed, then reload)"
    )
    llm, fused = ("llm-recommender", "mmsrarec") if full else QUICK
    if not full:
        console.print(
            f"[yellow]quick schedule[/]: `{llm}` trains 2 epochs (the committed table's model "
            "up to 8), so its rows and the fused system's differ from the README's table; "
            "`mmsrarec demo --full` runs that schedule.",
            highlight=False,
        )
    methods = ["item-knn", "sasrec", "cf-ensemble", llm, fused]
    run_evaluation(settings, methods, "sampled", json_path=settings.run_dir / "demo-sampled.json")
    run_evaluation(settings, methods, "full", json_path=settings.run_dir / "demo-full.json")

    console.print(f"[bold]3/3 graph[/] model `{settings.model}`, scorer `{fused}` (fused)")
    session = GraphSession(settings, GraphSettings(scorer=fused))
    threads = []
    for user in users or DEMO_USERS:
        result = session.recommend(user, top=5, on_update=print_update)
        threads.append(result["thread_id"])
        console.print(f"[bold]user {user}[/] · thread {result['thread_id']}")
        for rank, rec in enumerate(result["recommendations"], start=1):
            console.print(
                f"  {rank}. {rec['title']}  [dim]{rec['score']:.3f}[/]  {rec['evidence']}",
                highlight=False,
            )
    records = thread_trace(session.checkpointer, threads[0])
    console.print(render_tree(threads[0], records))
    console.print(
        "Inspect any run: `mmsrarec trace show THREAD`; export and verify: "
        "`mmsrarec trace export THREAD --out t.json && mmsrarec trace verify t.json`.",
        highlight=False,
    )
