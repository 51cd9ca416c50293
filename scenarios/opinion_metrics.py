"""Opinion metrics: stance by group, polarisation, assortativity on the graph.

* **mean stance by group** — per demographic group (the scenario's ``group_by``);
* **polarisation** — the population variance of stances, and Sarle's bimodality
  coefficient ``BC = (g² + 1) / (κ + 3(n−1)² / ((n−2)(n−3)))`` with ``g`` the sample
  skewness and ``κ`` the sample excess kurtosis (both bias-corrected); ``BC > 5/9``
  (the value of a uniform distribution) suggests two camps. Needs n ≥ 4 and some spread;
  NaN otherwise;
* **stance assortativity** — Newman's numeric assortativity of the stance over the
  graph's edges (``networkx.numeric_assortativity_coefficient``): +1 when neighbours
  hold the same view, negative when ties cross camps; NaN when undefined (no edges, or
  no variance among the agents at the ends of edges).

Agents with no stance yet (their every report failed) are left out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np
from scipy import stats

BC_UNIFORM = 5 / 9


def bimodality_coefficient(values: np.ndarray) -> float:
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 4 or np.ptp(x) == 0:
        return float("nan")
    g = float(stats.skew(x, bias=False))
    k = float(stats.kurtosis(x, bias=False))
    return (g * g + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def stance_assortativity(graph: nx.Graph, stance: Mapping[str, int]) -> float:
    """Numeric assortativity of ``stance`` over the edges between agents that have one.

    Computed by networkx on a light graph of just those edges with the stance as a node
    attribute (the scenario's own graph is left untouched).
    """
    edges = [(u, v) for u, v in graph.edges if u in stance and v in stance]
    if not edges or len({stance[n] for e in edges for n in e}) < 2:
        return float("nan")
    h = nx.Graph(edges)
    nx.set_node_attributes(h, {n: int(stance[n]) for n in h}, "stance")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = float(nx.numeric_assortativity_coefficient(h, "stance"))
    return r if math.isfinite(r) else float("nan")


def tick_metrics(
    tick: int, stance: Mapping[str, int], groups: Mapping[str, str], graph: nx.Graph,
    scale: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The period's row of the ``ticks`` table and its rows of the ``groups`` table."""
    keys = [k for k in groups if k in stance]
    x = np.asarray([stance[k] for k in keys], dtype=np.float64)
    n = len(x)
    row = {
        "tick": tick,
        "n_reported": n,
        "mean_stance": float(x.mean()) if n else float("nan"),
        "var_stance": float(x.var()) if n else float("nan"),
        "bimodality": bimodality_coefficient(x),
        "share_extreme": float(np.mean((x == 1) | (x == scale))) if n else float("nan"),
        "assortativity": stance_assortativity(graph, stance),
    }
    by_group: dict[str, list[int]] = {}
    for k in keys:
        by_group.setdefault(groups[k], []).append(stance[k])
    rows = [{"tick": tick, "group": g, "n": len(v), "mean_stance": float(np.mean(v)),
             "var_stance": float(np.var(v))} for g, v in sorted(by_group.items())]
    return row, rows


def degroot(own: int, neighbours: list[int], self_weight: float, scale: int) -> int:
    """A rule agent's next stance: ``self_weight·own + (1 − self_weight)·mean(neighbours)``,
    rounded half up and kept on the scale; unchanged when it heard nobody."""
    if not neighbours:
        return own
    x = self_weight * own + (1 - self_weight) * float(np.mean(neighbours))
    return int(min(max(math.floor(x + 0.5), 1), scale))
