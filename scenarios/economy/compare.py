"""The economy's comparison across a sweep: welfare, Gini and revenue per planner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from scenarios.economy.report import METRICS
from simlab.analysis.runs import compare, summarize_runs
from simlab.store import StoreError


def economy_comparison(paths: Sequence[str | Path]) -> pl.DataFrame:
    """Welfare, Gini and revenue per planner across a sweep's runs (all seeds)."""
    tables = summarize_runs(paths)
    if "economy" not in tables:
        raise StoreError(f"{', '.join(map(str, paths))}: no economy runs found")
    return compare(tables["economy"], "planner", METRICS)
