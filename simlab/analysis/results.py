"""What ``simlab analyze`` produces: per-run results and the assembled analysis.

Kept apart from :mod:`simlab.analysis.analyze` (which computes them) and
:mod:`simlab.analysis.write` (which writes them), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from simlab.analysis.authorship import pooled_auc
from simlab.analysis.metrics import MetricTables
from simlab.analysis.naturalness import ReferenceStats
from simlab.store import RunTables


@dataclass
class RunResult:
    label: str
    group: str
    tables: RunTables
    metrics: MetricTables
    scenario_tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        return str((self.tables.manifest.get("backend") or {}).get("model", ""))

    @property
    def scenario(self) -> str:
        sc = (self.tables.manifest.get("config") or {}).get("scenario") or {}
        return str(sc.get("name") or sc.get("_target_") or "reference")


@dataclass
class Analysis:
    out: Path
    runs: list[RunResult]
    group_keys: list[str]
    turns: pl.DataFrame
    agents: pl.DataFrame
    episodes: pl.DataFrame
    run_table: pl.DataFrame
    scenario: dict[str, pl.DataFrame]
    reference: ReferenceStats | None
    judge: pl.DataFrame | None = None
    files: list[Path] = field(default_factory=list)


def group_auc(an: Analysis) -> pl.DataFrame:
    """Pooled authorship AUC per group, over every agent's (same, diff) pairs."""
    rows = []
    for g in dict.fromkeys(r.group for r in an.runs):
        same, diff = [], []
        for r in an.runs:
            if r.group == g:
                same += r.metrics.agents["consistency_same"].drop_nulls().to_list()
                diff += r.metrics.pairs["diff"].to_list()
        rows.append({"group": g, "consistency_auc": pooled_auc(same, diff),
                     "agents": len(same), "diff_pairs": len(diff)})
    return pl.DataFrame(rows, schema={"group": pl.String, "consistency_auc": pl.Float64,
                                      "agents": pl.Int64, "diff_pairs": pl.Int64})
