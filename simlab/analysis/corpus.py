"""One run's text, vectorised once and shared by every lexical metric.

:class:`Corpus` holds the turn table, the (episode, agent) table with each agent's
persona index, and unit-length char 4-gram TF-IDF rows for utterances (``U``) and
distinct personas (``P``), all in one IDF space fitted on the run itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from simlab.analysis.text import TfidfSpace, agent_table, turn_table
from simlab.store import RunTables


@dataclass(frozen=True)
class Corpus:
    run: RunTables
    turns: pl.DataFrame  # turn_table(); ``row`` indexes U
    agents: pl.DataFrame  # agent_table() + persona_idx (row of P)
    persona_ids: list[str]
    space: TfidfSpace  # counts: utterances first, then personas
    U: sp.csr_matrix
    P: sp.csr_matrix
    own_persona: np.ndarray  # per utterance: row of P of the speaker, -1 if unknown
    prev_persona: np.ndarray  # per utterance: row of P of the previous speaker, -1 if none

    @property
    def n_personas(self) -> int:
        return len(self.persona_ids)

    @classmethod
    def build(cls, run: RunTables, n_jobs: int = 1) -> Corpus:
        turns = turn_table(run)
        agents = agent_table(run)
        personas = (agents.group_by("persona_id", maintain_order=True)
                    .agg(pl.col("persona_text").first()))
        persona_ids = personas["persona_id"].to_list()
        pidx = {p: i for i, p in enumerate(persona_ids)}
        agents = agents.with_columns(
            persona_idx=pl.col("persona_id").replace_strict(pidx, return_dtype=pl.Int64))
        docs = turns["content"].to_list() + personas["persona_text"].to_list()
        space = TfidfSpace.fit(docs or [""], n_jobs=n_jobs)
        vecs = space.vectors()
        n = turns.height
        U, P = vecs[:n], vecs[n:n + len(persona_ids)]
        key = agents.select(pl.col("episode_id"), pl.col("agent_id").alias("speaker"),
                            "persona_idx").unique(["episode_id", "speaker"], keep="first")
        own = turns.select("episode_id", "speaker").join(
            key, on=["episode_id", "speaker"], how="left", maintain_order="left")
        prev = turns.select("episode_id", pl.col("prev_speaker").alias("speaker")).join(
            key, on=["episode_id", "speaker"], how="left", maintain_order="left")
        return cls(run, turns, agents, persona_ids, space, U.tocsr(), P.tocsr(),
                   own["persona_idx"].fill_null(-1).to_numpy().astype(np.int64),
                   prev["persona_idx"].fill_null(-1).to_numpy().astype(np.int64))
