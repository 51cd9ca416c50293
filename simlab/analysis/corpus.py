"""One run's text, vectorised once and shared by every lexical metric.

:class:`Corpus` holds the turn table, the (episode, agent) table with each agent's
persona index, and unit-length char 4-gram TF-IDF rows for utterances (``U``) and
distinct personas (``P``), all in one IDF space fitted on the run itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from simlab.analysis.text import TfidfSpace, agent_table, rowwise_cos, turn_table
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
    #: P plus extra distractor personas (never anyone's own), for retrieval pools
    P_pool: sp.csr_matrix
    #: per utterance: cos(utterance, own persona), NaN if the speaker is unknown
    own_sim: np.ndarray

    @property
    def n_personas(self) -> int:
        return len(self.persona_ids)

    @property
    def n_pool(self) -> int:
        return self.P_pool.shape[0]

    @classmethod
    def build(cls, run: RunTables, n_jobs: int = 1,
              distractors: Sequence[str] = ()) -> Corpus:
        """Vectorise ``run``; ``distractors`` are persona texts from elsewhere (another
        corpus) that only widen the retrieval pools."""
        turns = turn_table(run)
        agents = agent_table(run)
        personas = (agents.group_by("persona_id", maintain_order=True)
                    .agg(pl.col("persona_text").first()))
        persona_ids = personas["persona_id"].to_list()
        pidx = {p: i for i, p in enumerate(persona_ids)}
        agents = agents.with_columns(
            persona_idx=pl.col("persona_id").replace_strict(pidx, return_dtype=pl.Int64))
        texts = personas["persona_text"].to_list()
        own_texts = set(texts)
        extra = [d for d in dict.fromkeys(distractors) if d.strip() and d not in own_texts]
        docs = turns["content"].to_list() + texts + extra
        space = TfidfSpace.fit(docs or [""], n_jobs=n_jobs)
        vecs = space.vectors()
        n = turns.height
        U, P = vecs[:n], vecs[n:n + len(persona_ids)]
        pool = vecs[n:n + len(persona_ids) + len(extra)]
        key = agents.select(pl.col("episode_id"), pl.col("agent_id").alias("speaker"),
                            "persona_idx").unique(["episode_id", "speaker"], keep="first")
        own = turns.select("episode_id", "speaker").join(
            key, on=["episode_id", "speaker"], how="left", maintain_order="left")
        prev = turns.select("episode_id", pl.col("prev_speaker").alias("speaker")).join(
            key, on=["episode_id", "speaker"], how="left", maintain_order="left")
        U, P = U.tocsr(), P.tocsr()
        own_idx = own["persona_idx"].fill_null(-1).to_numpy().astype(np.int64)
        return cls(run, turns, agents, persona_ids, space, U, P, own_idx,
                   prev["persona_idx"].fill_null(-1).to_numpy().astype(np.int64),
                   pool.tocsr(), gathered_cos(U, P, own_idx))


def gathered_cos(A: sp.csr_matrix, B: sp.csr_matrix, idx: np.ndarray) -> np.ndarray:
    """``cos(A[i], B[idx[i]])`` per row, NaN where ``idx[i] < 0``; gathers only B's rows
    (and A's only when some are missing), which is what costs time at 450k rows."""
    out = np.full(A.shape[0], np.nan)
    ok = idx >= 0
    if ok.all():
        out[:] = rowwise_cos(A, B[idx])
    elif ok.any():
        rows = np.flatnonzero(ok)
        out[rows] = rowwise_cos(A[rows], B[idx[rows]])
    return out
