"""Interview answers in ``simlab analyze``: each interview of a run as a per-episode table.

``simlab interview`` stores ``RUN/interviews/<name>/answers.parquet`` (one row per agent
and question). For the report, each interview becomes the table ``interview_<name>``
with one row per episode: for a Likert or number question, the mean answer of the
episode's agents (``<question>``); for a choice question, the share of agents giving
each option (``<question>=<option>``); and ``n_answered``. Being per episode, the
report compares it across groups like a scenario's own per-episode table: the mean and
95% interval over episodes per group, with differences when there are two.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

ANSWERS = "interviews/*/answers.parquet"


def interview_tables(run_dir: Path) -> dict[str, pl.DataFrame]:
    """``interview_<name>`` → one row per episode (see the module doc); none for a run
    without interviews or a corpus file."""
    if not Path(run_dir).is_dir():
        return {}
    out = {}
    for path in sorted(Path(run_dir).glob(ANSWERS)):
        answers = pl.read_parquet(path)
        if answers.is_empty() or "ok" not in answers.columns:
            continue
        answers = answers.filter(pl.col("ok"))
        name = path.parent.name
        per = answers.group_by("episode_id", maintain_order=True).agg(
            pl.col("agent_id").n_unique().alias("n_answered"))
        for (qid, kind), rows in answers.group_by(["question_id", "type"],
                                                  maintain_order=True):
            if kind in ("likert", "number"):
                col = rows.group_by("episode_id").agg(pl.col("value").mean().alias(qid))
            elif kind == "choice":
                shares = rows.with_columns(pl.col("answer").str.json_decode(pl.String)
                                           .alias("option"))
                col = shares.group_by("episode_id").agg(
                    (pl.col("option") == o).mean().alias(f"{qid}={o}")
                    for o in sorted(shares["option"].unique().to_list()))
            else:
                continue
            per = per.join(col, on="episode_id", how="left", maintain_order="left")
        out[f"interview_{name}".replace("-", "_")] = per.sort("episode_id")
    return out
