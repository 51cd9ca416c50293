"""The report's scenario section: each scenario's ``summarize`` tables across groups.

A scenario's summaries follow two shapes, and each gets the comparison its users ask for
(e.g. welfare, Gini and revenue per planner over a ``planner`` × seeds sweep):

- one row per episode (``economy``, ``opinion``, ``auction``): every numeric column's
  mean and 95% interval per group over episodes, as the headline comparison does, with
  differences when there are two groups (paired on the episode seed where it matches);
- one row per episode and ``tick`` (``economy_ticks``, ``opinion_ticks``): each metric
  over time per group, the mean over episodes with a 95% band.

Other tables (per item, per demographic group, per survey wave …) are listed as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from simlab.analysis.report import Report, add_comparison

#: Numeric columns that identify or count rather than measure.
ID_COLUMNS = frozenset({"episode_index", "seed", "run_seed", "tick", "year", "wave", "n_ticks",
                        "n_workers", "n_agents", "n_edges", "lot", "round"})
MAX_SERIES = 16  # metrics in one time-series figure


def group_column(df: pl.DataFrame) -> str:
    """The analysis group: ``analysis_group`` where the table has its own ``group``."""
    return "analysis_group" if "analysis_group" in df.columns else "group"


def metric_columns(df: pl.DataFrame) -> list[str]:
    """Numeric (not boolean) columns with a value that are not ids or counters."""
    return [c for c, t in df.schema.items()
            if t.is_numeric() and c not in ID_COLUMNS and df[c].drop_nulls().len()]


def table_shape(df: pl.DataFrame) -> str:
    """``episode``, ``tick`` or ``other``: what one row of the table is."""
    if "episode_id" not in df.columns or "run" not in df.columns:
        return "other"
    keys = ["run", "episode_id", *(["tick"] if "tick" in df.columns else [])]
    if not df.select(keys).is_duplicated().any():
        return "tick" if "tick" in df.columns else "episode"
    return "other"


def scenario_section(rep: Report, tables: Mapping[str, pl.DataFrame], fig_dir: Path,
                     root: Path) -> None:
    """Add the comparisons, time series and remaining tables to ``rep``."""
    from simlab.analysis.plots import series_grid

    for name, df in tables.items():
        rep.heading(name, level=3)
        shape, col = table_shape(df), group_column(df)
        metrics = metric_columns(df)
        groups = df[col].unique(maintain_order=True).to_list() if col in df.columns else []
        if shape == "episode" and metrics:
            rep.para(f"Per group: mean and 95% interval over episodes ({df.height} episodes).")
            # a scenario's own metrics: their ranges are the scenario's, not clipped here
            add_comparison(rep, df, metrics, root=root, group_col=col, clip=False,
                           figure=fig_dir / f"{name}.png" if len(groups) > 1 else None,
                           caption=f"{name}: metrics by group (95% CI)")
        elif shape == "tick" and metrics:
            shown = [m for m in metrics if not m.startswith("n_")][:MAX_SERIES]  # no counters
            rep.para(f"Over time per group: mean over episodes with a 95% band "
                     f"({df['episode_id'].n_unique()} episode id(s) × {df['run'].n_unique()} "
                     f"run(s)); the table is `scenario/{name}.parquet`.")
            rep.figure(series_grid, df, shown, "tick", col, fig_dir / f"{name}.png",
                       caption=f"{name} over ticks (95% CI)", root=root)
            continue  # a per-tick table is too long to print
        rep.table(df, max_rows=30)
