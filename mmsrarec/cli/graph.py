"""`mmsrarec graph`: the pipeline's diagram."""

from __future__ import annotations

from typing import Annotated

import typer

from mmsrarec.cli.common import console


def graph(
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print Mermaid source.")] = False,
) -> None:
    """Show the recommendation graph (nodes and edges, including the critic's loop)."""
    from mmsrarec.graph.graph import build_graph

    drawable = build_graph().get_graph()
    if mermaid:
        print(drawable.draw_mermaid())
        return
    for edge in drawable.edges:
        label = " (if the critic asks for another round)" if edge.conditional else ""
        if edge.conditional and edge.target != "summarize":
            label = " (when every summary is good enough or out of rounds)"
        console.print(f"{edge.source} -> {edge.target}{label}", highlight=False)
