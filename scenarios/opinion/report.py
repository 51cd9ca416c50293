"""Store-side summaries of the opinion scenario, for ``simlab analyze`` and notebooks.

Reads only the run's tables (``ticks``, ``groups``, ``survey``, ``episodes``), so a stored
run can be analysed without the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from simlab.store import RunTables

METRICS = ("mean_stance", "var_stance", "bimodality", "share_extreme", "assortativity")


def summarize_opinion(run: RunTables) -> dict[str, pl.DataFrame]:
    """``opinion``: one row per episode with the first and last day's metrics and their
    change; ``opinion_ticks`` and ``opinion_groups``: the time series; ``opinion_survey``:
    mean answer per episode, wave, question and group."""
    ticks = run.tables.get("ticks")
    if ticks is None or ticks.is_empty() or "mean_stance" not in ticks.columns:
        return {}
    ticks = ticks.sort("episode_id", "tick")
    ep_cols = [c for c in ("episode_id", "episode_index", "seed", "graph", "group_by",
                           "agent_policy", "archetypes", "n_agents", "n_edges")
               if c in run.episodes.columns]
    agg = []
    for m in METRICS:
        agg += [pl.col(m).first().alias(f"first_{m}"), pl.col(m).last().alias(f"last_{m}")]
    per_episode = ticks.group_by("episode_id", maintain_order=True).agg(
        pl.len().alias("n_ticks"), *agg)
    per_episode = per_episode.with_columns(
        (pl.col("last_mean_stance") - pl.col("first_mean_stance")).alias("shift_mean_stance"),
        (pl.col("last_var_stance") - pl.col("first_var_stance")).alias("shift_var_stance"),
    )
    summary = run.episodes.select(ep_cols).join(per_episode, on="episode_id", how="inner")
    if "episode_index" in summary.columns:
        summary = summary.sort("episode_index")
    out = {"opinion": summary, "opinion_ticks": ticks}
    groups = run.tables.get("groups")
    if groups is not None and not groups.is_empty():
        out["opinion_groups"] = groups.sort("episode_id", "tick", "group")
    survey = run.tables.get("survey")
    if survey is not None and not survey.is_empty():
        out["opinion_survey"] = (
            survey.group_by("episode_id", "wave", "question_id", "group")
            .agg(pl.len().alias("n"), pl.col("response").mean().alias("mean_response"))
            .sort("episode_id", "wave", "question_id", "group")
        )
    return out
