"""Persona drift: does an agent keep sounding like its own persona as the talk goes on?

For utterance *u* by an agent with persona *p*, over the run's distinct personas
*P* (unit TF-IDF rows):

    own(u)    = cos(u, p)
    others(u) = mean_{q in P, q != p} cos(u, q)
    rel(u)    = own(u) - others(u)

``rel`` is relative to the other personas of the same run, so a generic reply that fits
everyone scores about 0, not "in persona". Per agent, the *level* is the mean of ``rel``
and the *slope* its OLS slope over the agent's own turn index (negative = drifting away).

``others`` uses one dot product per utterance: with unit rows, the mean of cosines is
the cosine with the (unnormalised) mean vector, ``(u·Σq - u·p) / (|P| - 1)``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simlab.analysis.corpus import Corpus
from simlab.analysis.text import slope


def turn_drift(c: Corpus) -> pl.DataFrame:
    """Per utterance: ``persona_sim``, ``persona_sim_others`` and ``drift_rel``."""
    own = c.own_sim
    others = np.full(c.turns.height, np.nan)
    if c.n_personas >= 2:
        total = np.asarray(c.U @ np.asarray(c.P.sum(axis=0)).ravel()).ravel()
        others = (total - own) / (c.n_personas - 1)  # NaN stays NaN for unknown speakers
    return pl.DataFrame({
        "row": c.turns["row"],
        "persona_sim": own,
        "persona_sim_others": others,
        "drift_rel": own - others,
    }, nan_to_null=True)


def agent_drift(turns: pl.DataFrame) -> pl.DataFrame:
    """Per (episode, agent): ``drift_level`` (mean ``drift_rel``) and ``drift_slope``."""
    ok = turns.filter(pl.col("drift_rel").is_not_null())
    return ok.group_by("episode_id", "speaker", maintain_order=True).agg(
        drift_level=pl.col("drift_rel").mean(),
        drift_slope=slope(pl.col("agent_turn").cast(pl.Float64), pl.col("drift_rel")),
        persona_sim=pl.col("persona_sim").mean(),
    )
