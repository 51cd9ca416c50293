"""Scenario summaries across runs: ``Scenario.summarize`` concatenated over run dirs.

A Hydra sweep (``simlab -m scenario=economy scenario.planner=llm,saez,us_federal
seed=0,1,2``) writes one run directory per job. :func:`summarize_runs` finds them (with
``compare.find_runs``, as ``simlab analyze`` does), asks each run's scenario class (from
its manifest) for its summaries, and stacks them with the run's directory and seed;
:func:`compare` then gives mean, standard deviation and count per group (e.g. per
planner) over every episode of every seed. Usable from a notebook; ``simlab analyze``
puts the same tables in its report. Comparisons specific to one scenario live in its
package (``scenarios.economy.compare``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from simlab.analysis.compare import find_runs
from simlab.registry import UnknownScenario, spec_of_run
from simlab.store import StoreError, load_run


def summarize_runs(paths: Sequence[str | Path]) -> dict[str, pl.DataFrame]:
    """Every run's ``summarize`` tables by name, stacked, with ``run_dir``/``run_seed``."""
    try:
        runs = find_runs(paths)  # the same discovery as ``simlab analyze``
    except FileNotFoundError as exc:
        raise StoreError(str(exc)) from None
    if not runs:
        raise StoreError(f"{', '.join(map(str, paths))}: no run directories found")
    stacked: dict[str, list[pl.DataFrame]] = {}
    for run_dir in runs:
        run = load_run(run_dir)
        config = run.manifest.get("config") or {}
        try:
            cls = spec_of_run(config.get("scenario") or {}).cls
        except UnknownScenario as exc:
            raise StoreError(f"{run_dir}/manifest.json: {exc}") from None
        for name, df in cls.summarize(run).items():
            stacked.setdefault(name, []).append(df.with_columns(
                pl.lit(str(run_dir)).alias("run_dir"),
                pl.lit(run.manifest.get("seed"), dtype=pl.Int64).alias("run_seed")))
    return {name: pl.concat(frames, how="diagonal_relaxed") for name, frames in stacked.items()}


def compare(df: pl.DataFrame, by: str | Sequence[str], metrics: Sequence[str]) -> pl.DataFrame:
    """Mean, standard deviation and number of episodes of each metric per group."""
    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in (*keys, *metrics) if c not in df.columns]
    if missing:
        raise KeyError(f"compare: no column(s) {missing} in {df.columns}")
    aggs = [pl.len().alias("episodes")]
    for m in metrics:
        aggs += [pl.col(m).mean().alias(f"{m}_mean"), pl.col(m).std().alias(f"{m}_std")]
    return df.group_by(keys).agg(aggs).sort(keys)
