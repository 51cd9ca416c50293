"""A fork against its parent in ``simlab analyze PARENT FORK``: the intervention's effect.

A fork (``simlab fork``) replays its parent's episodes exactly up to its step K and
diverges from there, with the same seeds. So each forked episode pairs with its parent
episode of the same id, and their difference is the effect of what the fork changed,
free of between-episode noise (common random numbers). For every analysis run whose
manifest names another analysed run as its ``fork.parent``, this gives:

- ``fork_effects``: per metric, the paired difference fork − parent over episodes, with
  a 95% t-interval. The metrics are the analysis's own per-episode ones (echo, failure
  rate …) and every numeric column of the scenario's per-episode tables (final mean
  stance, welfare, revenue …).
- ``fork_effects_ticks``: the same per tick, for every per-tick scenario table (and per
  demographic group where the table has one). Ticks before the fork are exactly zero;
  the effect shows from K on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from simlab.analysis.compare import paired
from simlab.analysis.results import RunResult
from simlab.analysis.scenario_report import ID_COLUMNS, metric_columns, table_shape

#: analysis metrics that are not outcomes (ids, counts, seeds)
_SKIP = frozenset({"episode_index", "episode_seed", "n_turns", "n_events", "n_steps",
                   "wall_s", "seed"})


def fork_pairs(results: Sequence[RunResult]) -> list[tuple[RunResult, RunResult, int]]:
    """(parent, fork, K) for every analysed fork whose parent is analysed too."""
    by_dir = {Path(r.tables.run_dir).resolve(): r for r in results}
    out = []
    for r in results:
        fork = (r.tables.manifest.get("config") or {}).get("fork") or {}
        parent = by_dir.get(Path(fork["parent"]).resolve()) if fork.get("parent") else None
        if parent is not None and parent is not r:
            out.append((parent, r, int(fork.get("at_step") or 0)))
    return out


def _rows(name: str, a: pl.DataFrame, b: pl.DataFrame, on: list[str],
          metrics: Sequence[str], tags: dict) -> list[dict]:
    """Paired differences of ``metrics`` between tables ``a`` (parent) and ``b`` (fork),
    matched on ``on``, within each combination of the ``on`` columns besides the
    episode."""
    joined = a.select(*on, *metrics).join(b.select(*on, *metrics), on=on, how="inner",
                                          suffix="__fork")
    within = [c for c in on if c != "episode_id"]
    parts = joined.partition_by(within, maintain_order=True, as_dict=True) if within \
        else {(): joined}
    rows = []
    for key, part in parts.items():
        for m in metrics:
            d, lo, hi, p, n = paired(part[m].to_list(), part[f"{m}__fork"].to_list())
            rows.append({**tags, "table": name, **dict(zip(within, key, strict=True)),
                         "metric": m, "parent_mean": part[m].mean(),
                         "fork_mean": part[f"{m}__fork"].mean(), "effect": d,
                         "ci_low": lo, "ci_high": hi, "p": p, "n_episodes": n})
    return rows


def fork_effects(results: Sequence[RunResult]) -> dict[str, pl.DataFrame]:
    """``fork_effects`` and ``fork_effects_ticks`` (see the module doc); {} if no fork
    is analysed with its parent."""
    per_episode, per_tick = [], []
    for parent, fork, at in fork_pairs(results):
        tags = {"parent": parent.label, "fork": fork.label, "at_step": at}
        ours = [c for c in metric_columns(parent.metrics.episodes) if c not in _SKIP]
        per_episode += _rows("episodes", parent.metrics.episodes, fork.metrics.episodes,
                             ["episode_id"], ours, tags)
        for name, table in parent.scenario_tables.items():
            other = fork.scenario_tables.get(name)
            if other is None or "episode_id" not in table.columns:
                continue
            shaped = table.with_columns(run=pl.lit("p"))
            metrics = [m for m in metric_columns(table) if m in other.columns
                       and m not in ID_COLUMNS and m not in _SKIP]
            if table_shape(shaped) == "episode":
                per_episode += _rows(name, table, other, ["episode_id"], metrics, tags)
            elif "tick" in table.columns:
                keys = ["episode_id", "tick", *(["group"] if "group" in table.columns
                                                else [])]
                if not table.select(keys).is_duplicated().any():
                    metrics = [m for m in metrics if m not in keys]
                    per_tick += _rows(name, table, other, keys, metrics, tags)
    out = {}
    if per_episode:
        out["fork_effects"] = pl.DataFrame(per_episode, infer_schema_length=None)
    if per_tick:
        ticks = pl.DataFrame(per_tick, infer_schema_length=None)
        order = ["parent", "fork", "table", "metric", "group", "tick"]
        out["fork_effects_ticks"] = ticks.sort([c for c in order if c in ticks.columns])
    return out
