"""All non-judge metrics of one run, as three polars tables: per turn, agent, episode.

:func:`compute_metrics` vectorises the run once (:class:`~simlab.analysis.corpus.Corpus`)
and joins what each metric module computes. Metrics that need a partner (echo, partner
detectors) or two utterances (authorship) come out null where a run has none, so
monologues, bidders' one-liners and reference corpora are analysed alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from simlab.analysis import authorship as auth
from simlab.analysis.corpus import Corpus
from simlab.analysis.drift import agent_drift, turn_drift
from simlab.analysis.echo import echo_summary, turn_echo
from simlab.analysis.naturalness import (
    ReferenceStats,
    corpus_distance,
    distances,
    turn_naturalness,
)
from simlab.analysis.retrieval import POOL_SIZES, persona_retrieval
from simlab.analysis.roles import FLAGS, failed_roles, turn_roles
from simlab.analysis.text import turn_table
from simlab.events import ENV, FAILURE
from simlab.store import RunTables

ROLE_COLUMNS = (*FLAGS, "role_confusion")


@dataclass
class MetricTables:
    turns: pl.DataFrame
    agents: pl.DataFrame
    episodes: pl.DataFrame
    #: authorship (same, diff) pairs, for pooled AUCs over any set of agents
    pairs: pl.DataFrame
    #: run-level figures: pooled consistency AUC, corpus naturalness distances
    run: dict[str, Any] = field(default_factory=dict)
    #: seconds per stage: wall, and ``<stage>_cpu`` for this process's CPU time
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def mrr_columns(self) -> list[str]:
        return [c for c in self.episodes.columns if c.startswith("mrr_k")]


def persona_texts(tables: RunTables) -> list[str]:
    """Distinct persona texts of a run or corpus (for use as retrieval distractors)."""
    from simlab.analysis.text import agent_table

    return agent_table(tables).unique("persona_id", keep="first", maintain_order=True)[
        "persona_text"].to_list()


def persona_file_texts(path: str | Path) -> list[str]:
    """Persona texts of a persona file (``personas/*.yaml``, ``.jsonl``), built exactly as
    for a stored agent, so the run's own personas are recognised and not used twice."""
    from simlab.analysis.text import persona_text
    from simlab.personas import load_personas

    out = []
    for p in load_personas(path):
        row = p.model_dump(exclude={"goals", "hobbies", "attributes"})
        row["goals_json"] = json.dumps(list(p.goals)) if p.goals else None
        row["hobbies_json"] = json.dumps(list(p.hobbies)) if p.hobbies else None
        out.append(persona_text(row))
    return out


def reference_stats(ref: RunTables, name: str = "reference") -> ReferenceStats:
    """Naturalness statistics of a corpus (a reference file or any run)."""
    turns = turn_table(ref)
    _, episodes = turn_naturalness(turns)
    return ReferenceStats.from_features(name, episodes, turns["n_words"].to_numpy())


def compute_metrics(
    run: RunTables,
    *,
    reference: ReferenceStats | None = None,
    seed: int = 0,
    pool_sizes: tuple[int, ...] = POOL_SIZES,
    n_distractors: int = 5,
    delta: float = 0.1,
    n_jobs: int = 1,
    distractors: Sequence[str] = (),
) -> MetricTables:
    """Every non-judge metric of ``run``; ``distractors`` are extra persona texts for
    the retrieval pools (see :mod:`simlab.analysis.retrieval`)."""
    clock: dict[str, float] = {}
    cpu: list[float] = [time.process_time()]

    def tick(name: str, t0: float) -> float:
        now, c = time.perf_counter(), time.process_time()
        clock[name] = round(now - t0, 4)
        clock[f"{name}_cpu"] = round(c - cpu[0], 4)  # this process only, not workers
        cpu[0] = c
        return now

    t0 = time.perf_counter()
    c = Corpus.build(run, n_jobs=n_jobs, distractors=distractors)
    t0 = tick("vectorise", t0)
    drift = turn_drift(c)
    t0 = tick("drift", t0)
    rr = persona_retrieval(c, pool_sizes, seed=seed)
    t0 = tick("retrieval", t0)
    echo = turn_echo(c)
    t0 = tick("echo", t0)
    roles = turn_roles(c, delta=delta)
    failed = failed_roles(c)
    t0 = tick("roles", t0)
    nat_turns, nat_eps = turn_naturalness(c.turns)
    t0 = tick("naturalness", t0)
    agents_auth, pairs = auth.authorship(c, n_distractors=n_distractors, seed=seed)
    t0 = tick("authorship", t0)

    base = c.turns.select("row", "episode_id", "speaker", "turn", "agent_turn", "step",
                          "n_words")
    turns = base
    for df in (nat_turns, drift, rr, echo, roles):
        turns = turns.join(df, on="row", how="left", maintain_order="left")
    mrr = [col for col in rr.columns if col.startswith("rr_k")]

    # role rates over every turn with a model reply: utterances and failed turns
    role_rows = pl.concat([turns.select("episode_id", "speaker", *ROLE_COLUMNS), failed])
    agents = _agents(c, turns, agents_auth, mrr, role_rows)
    episodes = _episodes(run, turns, agents, nat_eps, mrr, role_rows)
    run_level: dict[str, Any] = {
        "consistency_auc": auth.pooled_auc(agents_auth["consistency_same"].drop_nulls()
                                           .to_numpy(), pairs["diff"].to_numpy()),
        "n_personas": c.n_personas,
        "n_distractor_pool": c.n_pool,
    }
    if reference is not None:
        dist = distances(nat_eps, c.turns, reference)
        episodes = episodes.join(dist, on="episode_id", how="left", maintain_order="left")
        run_level.update(corpus_distance(nat_eps, c.turns, reference))
    tick("aggregate", t0)
    return MetricTables(turns.drop("row").rename({"speaker": "agent_id"}), agents, episodes,
                        pairs.rename({"speaker": "agent_id"}), run_level, clock)


def _agents(c: Corpus, turns: pl.DataFrame, auth_df: pl.DataFrame,
            mrr: list[str], role_rows: pl.DataFrame) -> pl.DataFrame:
    per = turns.group_by("episode_id", "speaker", maintain_order=True).agg(
        pl.len().alias("n_turns"),
        pl.col("n_words").mean().alias("mean_turn_words"),
        pl.col("is_question").mean().alias("question_rate"),
        *[pl.col(col).mean().alias(col.replace("rr_", "mrr_")) for col in mrr],
    )
    roles = role_rows.group_by("episode_id", "speaker").agg(
        role_confusion_rate=pl.col("role_confusion").mean())
    for df in (roles, agent_drift(turns), echo_summary(turns, ["episode_id", "speaker"]),
               auth_df):
        per = per.join(df, on=["episode_id", "speaker"], how="left", maintain_order="left")
    meta = c.agents.select("episode_id", pl.col("agent_id").alias("speaker"), "name", "role",
                           "persona_id").unique(["episode_id", "speaker"], keep="first")
    per = per.join(meta, on=["episode_id", "speaker"], how="left", maintain_order="left")
    return per.rename({"speaker": "agent_id"}).select(
        "episode_id", "agent_id", "name", "role", "persona_id",
        *[x for x in per.columns if x not in ("episode_id", "speaker", "name", "role",
                                              "persona_id")])


def _episodes(run: RunTables, turns: pl.DataFrame, agents: pl.DataFrame,
              nat: pl.DataFrame, mrr: list[str], role_rows: pl.DataFrame) -> pl.DataFrame:
    per = turns.group_by("episode_id", maintain_order=True).agg(
        pl.len().alias("n_utterances"),
        pl.col("speaker").n_unique().alias("n_speakers"),
        *[pl.col(col).mean().alias(col.replace("rr_", "mrr_")) for col in mrr],
    ).join(role_rows.group_by("episode_id").agg(
        *[pl.col(col).mean().alias(f"{col}_rate") for col in ROLE_COLUMNS]),
        on="episode_id", how="left", maintain_order="left")
    from_agents = agents.group_by("episode_id").agg(
        drift_level=pl.col("drift_level").mean(),
        drift_slope=pl.col("drift_slope").mean(),
        consistency=pl.col("consistency").mean(),
        consistency_margin=pl.col("consistency_margin").mean(),
    )
    for df in (from_agents, echo_summary(turns, ["episode_id"]),
               nat.drop("mean_turn_words").join(
                   turns.group_by("episode_id").agg(mean_turn_words=pl.col("n_words").mean()),
                   on="episode_id", how="left")):
        per = per.join(df, on="episode_id", how="left", maintain_order="left")
    cols = run.episodes.columns
    # the episode seed identifies an episode's random draws across runs of a sweep, so
    # comparisons can pair episodes (simlab.analysis.compare.pair_key)
    ep = run.episodes.select("episode_id", *(["seed"] if "seed" in cols else []),
                             *[c for c in ("scenario", "termination_reason", "n_failures")
                               if c in cols]).rename({"seed": "episode_seed"}, strict=False)
    # every stored episode gets a row, even one with no utterances
    out = ep.join(per, on="episode_id", how="left", maintain_order="left")
    if "n_failures" in out.columns:
        # failed turns (replies unusable after re-asks) among all attempted turns; an
        # attempt that worked is an event a call produced (an utterance, or a scenario's
        # action: hours, a stance, a bid), else, where events carry no call metadata (a
        # corpus), an utterance
        ev = run.events
        acted = (ev.filter((pl.col("attempts") > 0) & (pl.col("kind") != FAILURE)
                           & (pl.col("speaker") != ENV))
                 .group_by("episode_id").agg(n_acted=pl.len()))
        out = out.join(acted, on="episode_id", how="left", maintain_order="left")
        ok = pl.coalesce("n_acted", "n_utterances").fill_null(0)
        out = out.with_columns(failure_rate=pl.when(ok + pl.col("n_failures") > 0).then(
            pl.col("n_failures") / (ok + pl.col("n_failures")))).drop("n_acted")
    return out
