"""Social graphs for the opinion scenario, built with networkx on the agents' keys.

* ``small_world`` — Watts–Strogatz (connected variant): a ring where each agent knows its
  ``degree`` nearest agents, each tie rewired with probability ``rewire_p``;
* ``scale_free`` — Barabási–Albert preferential attachment, ``degree // 2`` ties per
  newcomer (mean degree ≈ ``degree``), so a few hubs reach many people;
* ``sbm`` — a stochastic block model with one block per demographic group: two agents
  are tied with probability ``p_in`` inside a group and ``p_out`` across groups
  (homophily when ``p_in > p_out``).

Every generator is seeded with one draw from the scenario RNG, so a seed gives the
same graph. Agents are placed in participant order (grouped by block for ``sbm``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np

GRAPHS = ("small_world", "scale_free", "sbm")


def build_graph(
    kind: str,
    keys: Sequence[str],
    groups: Mapping[str, str],
    rng: np.random.Generator,
    *,
    degree: int = 4,
    rewire_p: float = 0.1,
    p_in: float = 0.5,
    p_out: float = 0.05,
) -> nx.Graph:
    """An undirected graph on ``keys`` (every key is a node, isolated or not)."""
    n = len(keys)
    if kind not in GRAPHS:
        raise ValueError(f"scenario.graph: expected one of {GRAPHS}, got {kind!r}")
    if n < 2:
        raise ValueError(f"population: the opinion graph needs at least 2 agents, got {n}")
    if degree < 1:
        raise ValueError(f"scenario.degree: must be >= 1, got {degree}")
    for key, p in (("rewire_p", rewire_p), ("p_in", p_in), ("p_out", p_out)):
        if not 0 <= p <= 1:
            raise ValueError(f"scenario.{key}: a probability in [0, 1], got {p}")
    seed = int(rng.integers(2**31 - 1))
    if kind == "small_world":
        k = min(degree, n - 1)
        if k < 2:  # Watts–Strogatz needs k >= 2: two agents just know each other
            g = nx.path_graph(n)
        else:
            g = nx.connected_watts_strogatz_graph(n, k, rewire_p, tries=100, seed=seed)
        return nx.relabel_nodes(g, dict(enumerate(keys)))
    if kind == "scale_free":
        m = max(1, min(degree // 2, n - 1))
        return nx.relabel_nodes(nx.barabasi_albert_graph(n, m, seed=seed), dict(enumerate(keys)))
    blocks: dict[str, list[str]] = {}
    for key in keys:
        blocks.setdefault(groups[key], []).append(key)
    ordered = [k for members in blocks.values() for k in members]
    sizes = [len(members) for members in blocks.values()]
    probs = [[p_in if i == j else p_out for j in range(len(sizes))] for i in range(len(sizes))]
    g = nx.stochastic_block_model(sizes, probs, seed=seed)
    out = nx.Graph()
    out.add_nodes_from(keys)
    out.add_edges_from((ordered[a], ordered[b]) for a, b in g.edges)
    return out
