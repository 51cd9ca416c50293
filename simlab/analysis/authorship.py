"""Consistency by authorship verification, after Eval4Sim.

An agent that stays in character writes like itself: the char 4-gram TF-IDF profile of
its early utterances should be closer to the profile of its own late utterances than to
other agents' late utterances. For agent *a* with early profile ``E_a`` (its first
``n // 2`` utterances) and late profile ``L_a`` (the rest):

    same_a   = cos(E_a, L_a)
    diff_ab  = cos(E_a, L_b)   for b in: a's partners in the episode, plus
                               ``n_distractors`` agents drawn from other episodes
    score_a  = mean_b ( 1[same_a > diff_ab] + 0.5 * 1[same_a = diff_ab] )
    margin_a = same_a - mean_b diff_ab

``score_a`` is the agent's AUC-style separability (1: always closer to itself, 0.5:
indistinguishable from others). :func:`pooled_auc` is the same over every (same, diff)
pair of a set of agents: the ROC AUC of "same author" against "different author".
Agents with fewer than two utterances have no profile pair and get nulls.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import rankdata

from simlab.analysis.corpus import Corpus
from simlab.analysis.text import rowwise_cos

DECIMALS = 6  # scores are compared after rounding, so float noise is not a "win"


def authorship(c: Corpus, n_distractors: int = 5, seed: int = 0) -> tuple[pl.DataFrame,
                                                                          pl.DataFrame]:
    """Per-agent consistency and the (same, diff) pairs behind it."""
    t = c.turns.filter(pl.col("n_agent_turns") >= 2)
    empty_agents = pl.DataFrame(schema={
        "episode_id": pl.String, "speaker": pl.String, "consistency": pl.Float64,
        "consistency_same": pl.Float64, "consistency_margin": pl.Float64})
    empty_pairs = pl.DataFrame(schema={"episode_id": pl.String, "speaker": pl.String,
                                       "same": pl.Float64, "diff": pl.Float64})
    if t.is_empty():
        return empty_agents, empty_pairs
    agents = t.select("episode_id", "speaker").unique(maintain_order=True).with_row_index("a")
    t = t.join(agents, on=["episode_id", "speaker"], maintain_order="left").with_columns(
        late=(pl.col("agent_turn") >= pl.col("n_agent_turns") // 2).cast(pl.Int64))
    n_agents = agents.height
    groups = t["a"].cast(pl.Int64).to_numpy() * 2 + t["late"].to_numpy()
    prof = c.space.profiles(groups, 2 * n_agents, t["row"].to_numpy())
    E, L = prof[0::2], prof[1::2]
    same = np.round(rowwise_cos(E, L), DECIMALS)

    a_parts, d_parts = [], []
    for b in _comparison_rounds(agents["episode_id"].to_numpy(), n_distractors, seed):
        valid = b >= 0
        if not valid.any():
            continue
        # all rows at once (E is never gathered), the rounds' gaps masked afterwards
        d = rowwise_cos(E, L[np.where(valid, b, 0)])
        a_parts.append(np.flatnonzero(valid))
        d_parts.append(d[valid])
    if not a_parts:
        return empty_agents, empty_pairs
    a_idx = np.concatenate(a_parts)
    diff = np.round(np.concatenate(d_parts), DECIMALS)
    s = same[a_idx]
    win = (s > diff) + 0.5 * (s == diff)
    pairs = pl.DataFrame({"a": a_idx.astype(np.uint32), "same": s.astype(np.float64),
                          "diff": diff.astype(np.float64), "win": win})
    per = pairs.group_by("a").agg(consistency=pl.col("win").mean(),
                                  diff_mean=pl.col("diff").mean())
    out = agents.join(per, on="a", how="left", maintain_order="left").with_columns(
        consistency_same=pl.Series(same.astype(np.float64))
    ).with_columns(consistency_margin=pl.col("consistency_same") - pl.col("diff_mean"))
    pairs = pairs.join(agents, on="a").select("episode_id", "speaker", "same", "diff")
    return (out.select("episode_id", "speaker", "consistency", "consistency_same",
                       "consistency_margin"), pairs)


def _comparison_rounds(episodes: np.ndarray, n_distractors: int,
                       seed: int) -> list[np.ndarray]:
    """Whom each agent is compared with, one array per round (``-1``: nobody): every
    other agent of its episode, then ``n_distractors`` random agents of other episodes.

    Rounds keep every agent on its own row, so the profile matrices are compared row by
    row without gathering ``E`` (the costly part at 90k agents).
    """
    n = len(episodes)
    order = np.arange(n)
    # agents come grouped by episode (built in episode order): contiguous blocks
    _, inverse, counts = np.unique(episodes, return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    start, k = starts[inverse], counts[inverse]
    pos = order - start
    rounds = [np.where(j < k, start + (pos + j) % np.maximum(k, 1), -1)
              for j in range(1, int(counts.max()) if n else 1)]
    if n_distractors > 0 and n > 1:
        rng = np.random.default_rng(seed)
        for _ in range(n_distractors):
            b = rng.integers(0, n, size=n)
            rounds.append(np.where(episodes[b] != episodes, b, -1))
    return rounds


def pooled_auc(same: np.ndarray, diff: np.ndarray) -> float | None:
    """P(a same-author score beats a different-author one), ties counting one half
    (the Mann-Whitney U statistic over ``len(same) * len(diff)``)."""
    same, diff = np.asarray(same, float), np.asarray(diff, float)
    if len(same) == 0 or len(diff) == 0:
        return None
    ranks = rankdata(np.concatenate([same, diff]))
    u = ranks[: len(same)].sum() - len(same) * (len(same) + 1) / 2
    return float(u / (len(same) * len(diff)))
