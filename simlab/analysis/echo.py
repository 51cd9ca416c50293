"""Echoing, the failure mode SPASM names: an agent drifts into parroting its partner.

For utterance *u_t* whose previous utterance *u_{t-1}* came from someone else, and
whose speaker has spoken before (own previous utterance *u_s*), on unit char 4-gram
TF-IDF rows:

    partner(t) = cos(u_t, u_{t-1})     self(t) = cos(u_t, u_s)
    margin(t)  = partner(t) - self(t)   echoed(t) = 1[margin(t) > 0]

The *echo rate* is the mean of ``echoed`` over eligible turns; the *trend* is the OLS
slope of ``margin`` over the turn index (positive: the agents converge on each other's
words as the conversation goes on). Turns without a partner turn right before them or
without an own earlier turn (openers, monologues) are not eligible and get nulls.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simlab.analysis.corpus import Corpus, gathered_cos
from simlab.analysis.text import slope

DECIMALS = 6


def turn_echo(c: Corpus) -> pl.DataFrame:
    t = c.turns
    prev = t["prev_row"].to_numpy()
    own = t["own_prev_row"].to_numpy()
    other = (t["prev_speaker"].is_not_null() & (t["prev_speaker"] != t["speaker"])) \
        .fill_null(False).to_numpy()
    ok = other & (prev >= 0) & (own >= 0)
    partner = np.round(gathered_cos(c.U, c.U, np.where(ok, prev, -1)), DECIMALS)
    selfsim = np.round(gathered_cos(c.U, c.U, np.where(ok, own, -1)), DECIMALS)
    margin = partner - selfsim
    echoed = np.where(np.isnan(margin), np.nan, (margin > 0).astype(float))
    return pl.DataFrame({"row": t["row"], "echo_partner_sim": partner, "echo_self_sim": selfsim,
                         "echo_margin": margin, "echoed": echoed}, nan_to_null=True)


def echo_summary(turns: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """``echo_rate``, mean ``echo_margin`` and ``echo_trend`` (slope over ``turn``) by ``by``."""
    ok = turns.filter(pl.col("echo_margin").is_not_null())
    return ok.group_by(by, maintain_order=True).agg(
        echo_rate=pl.col("echoed").mean(),
        echo_margin=pl.col("echo_margin").mean(),
        echo_trend=slope(pl.col("turn").cast(pl.Float64), pl.col("echo_margin")),
    )
