"""The opinion scenario's network, drawn with each agent's stance tick by tick.

The graph is read back from the events: a post's audience is its author's graph
neighbours at that tick (``scenarios/opinion``), so the posts' speaker-audience pairs
are the edges. Positions come from a seeded spring layout, so a page shows the same
picture on every load.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import polars as pl

from simlab.events import UTTERANCE


def opinion_network(events: pl.DataFrame, stances: pl.DataFrame, names: dict[str, str],
                    scale: int | None = None) -> dict[str, Any] | None:
    """Nodes with positions (0-1), edges, and each tick's stance per node; None when the
    episode has no stances table (not an opinion episode)."""
    if stances.is_empty() or not {"tick", "agent_id", "stance"} <= set(stances.columns):
        return None
    graph = nx.Graph()
    graph.add_nodes_from(sorted(stances["agent_id"].unique().to_list()))
    posts = events.filter(pl.col("kind") == UTTERANCE)
    for speaker, audience in zip(posts["speaker"].to_list(), posts["audience"].to_list(),
                                 strict=True):
        graph.add_edges_from((speaker, a) for a in (audience or []) if a in graph)
    nodes = sorted(graph.nodes)
    pos = nx.spring_layout(graph, seed=0) if nodes else {}
    xs = [float(pos[n][0]) for n in nodes]
    ys = [float(pos[n][1]) for n in nodes]

    def scaled(v: float, lo: float, hi: float) -> float:
        return 0.05 + 0.9 * ((v - lo) / (hi - lo) if hi > lo else 0.5)

    index = {n: i for i, n in enumerate(nodes)}
    ticks = sorted(stances["tick"].unique().to_list())
    by_tick: dict[str, list[int | None]] = {}
    for tick in ticks:
        row: list[int | None] = [None] * len(nodes)
        for agent, stance in stances.filter(pl.col("tick") == tick).select(
                "agent_id", "stance").iter_rows():
            row[index[agent]] = stance
        by_tick[str(tick)] = row
    return {
        "nodes": [{"id": n, "name": names.get(n, n), "x": scaled(x, min(xs), max(xs)),
                   "y": scaled(y, min(ys), max(ys))} for n, x, y in zip(nodes, xs, ys,
                                                                        strict=True)],
        "edges": sorted((index[a], index[b]) for a, b in graph.edges),
        "ticks": ticks, "stances": by_tick,
        "scale": [1, int(scale or stances["stance"].max() or 7)],  # the Likert scale's ends
    }
