"""Metrics rows of the labour & taxation scenario and its store-side summaries.

Per period the scenario stores (``Scenario.tables()``):

* ``ticks`` — one row: labour supply, pre/post-tax income, Gini of both, revenue, rebate,
  utilitarian and inverse-income-weighted welfare, the planner in office;
* ``schedule`` — one row per bracket: the rate schedule in force;
* ``labour`` — one row per worker: skill, hours, income, tax, rebate, consumption, utility;

plus ``elections``/``votes`` when workers vote. :func:`summarize_economy` turns a stored
run into per-episode figures for ``simlab analyze`` and sweep comparisons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from scenarios.economy.tax import Settlement, TaxSchedule, gini, welfare

if TYPE_CHECKING:
    from simlab.store import RunTables

#: Per-episode comparison metrics (means over the episode's periods).
METRICS = ("welfare_utilitarian", "welfare_inverse_income", "gini_pretax", "gini_posttax",
           "revenue", "mean_hours")


#: The numbers of the last ``ticks`` row that ``when:`` conditions may test.
INDICATORS = ("n_failed", "labour_supply", "mean_hours", "pretax_mean", "posttax_mean",
              "gini_pretax", "gini_posttax", "revenue", "rebate", "effective_rate",
              "welfare_utilitarian", "welfare_inverse_income", "top_rate", "mean_rate")


def tick_row(tick: int, year: int, planner: str, s: Settlement, schedule: TaxSchedule,
             n_failed: int, income_floor: float) -> dict[str, Any]:
    w_util, w_inv = welfare(s.utility, s.pretax, income_floor)
    pretax_total = float(s.pretax.sum())
    return {
        "tick": tick,
        "year": year,
        "planner": planner,
        "n_workers": len(s.hours),
        "n_failed": n_failed,
        "labour_supply": float(s.hours.sum()),
        "mean_hours": float(s.hours.mean()),
        "pretax_total": pretax_total,
        "pretax_mean": float(s.pretax.mean()),
        "posttax_mean": float(s.consumption.mean()),
        "gini_pretax": gini(s.pretax),
        "gini_posttax": gini(s.consumption),
        "revenue": s.revenue,
        "rebate": s.rebate,
        "effective_rate": s.revenue / pretax_total * 100 if pretax_total else float("nan"),
        "welfare_utilitarian": w_util,
        "welfare_inverse_income": w_inv,
        "top_rate": schedule.rates[-1],
        "mean_rate": float(np.mean(schedule.rates)),
    }


def schedule_rows(tick: int, schedule: TaxSchedule) -> list[dict[str, Any]]:
    t = schedule.thresholds
    return [
        {"tick": tick, "bracket": k, "lower": t[k], "upper": t[k + 1] if k + 1 < len(t) else None,
         "rate": rate}
        for k, rate in enumerate(schedule.rates)
    ]


def labour_rows(tick: int, keys: list[str], skill: np.ndarray, sources: list[str],
                how: list[str], s: Settlement) -> list[dict[str, Any]]:
    cols = zip(keys, skill.tolist(), sources, how, s.hours.tolist(), s.pretax.tolist(),
               s.tax.tolist(), s.consumption.tolist(), s.utility.tolist(), strict=True)
    return [
        {"tick": tick, "agent_id": key, "skill": w, "skill_source": src, "how": hw,
         "hours": h, "pretax": z, "tax": t, "rebate": s.rebate, "consumption": c, "utility": u}
        for key, w, src, hw, h, z, t, c, u in cols
    ]


def summarize_economy(run: RunTables) -> dict[str, pl.DataFrame]:
    """``economy``: one row per episode (planner, seed, means of :data:`METRICS`, final
    top rate); ``economy_ticks``: the per-period table with the episode's planner."""
    ticks = run.tables.get("ticks")
    if ticks is None or ticks.is_empty() or "welfare_utilitarian" not in ticks.columns:
        return {}
    ep_cols = [c for c in ("episode_id", "episode_index", "seed", "planner", "worker_policy",
                           "tax_schedule", "voting", "archetypes") if c in run.episodes.columns]
    episodes = run.episodes.select(ep_cols)
    per_episode = (
        ticks.sort("episode_id", "tick")
        .group_by("episode_id", maintain_order=True)
        .agg(
            pl.len().alias("n_ticks"),
            *[pl.col(m).mean() for m in METRICS],
            pl.col("welfare_utilitarian").last().alias("final_welfare_utilitarian"),
            pl.col("gini_posttax").last().alias("final_gini_posttax"),
            pl.col("top_rate").last().alias("final_top_rate"),
            pl.col("planner").last().alias("final_planner"),
            pl.col("n_failed").sum().alias("failed_actions"),
        )
    )
    summary = episodes.join(per_episode, on="episode_id", how="inner")
    if "episode_index" in summary.columns:
        summary = summary.sort("episode_index")
    return {"economy": summary, "economy_ticks": ticks.sort("episode_id", "tick")}


def tick_means(ticks: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-episode means of the headline per-tick metrics (NaN for an empty run)."""
    out: dict[str, Any] = {"n_ticks": len(ticks)}
    for key in ("welfare_utilitarian", "welfare_inverse_income", "gini_pretax", "revenue"):
        out[key] = float(np.mean([r[key] for r in ticks])) if ticks else float("nan")
    return out
