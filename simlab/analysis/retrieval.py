"""Adherence by persona retrieval, after Eval4Sim.

Each utterance is a query; personas are the documents. For a pool of size *K* (the
speaker's own persona plus *K - 1* distractor personas of the same run), rank the pool by
cosine to the utterance (char 4-gram TF-IDF) and score the reciprocal rank of the
speaker's own persona. Ties count against it (rank = 1 + #distractors scoring >= own),
so a reply that matches no persona at all gets ``1/K``, not 1:

    RR_K(u) = 1 / (1 + #{d in D_K(u) : cos(u, d) >= cos(u, p_own)})
    MRR@K   = mean_u RR_K(u)

Growing *K* shows how quickly an agent's persona gets lost among others; chance level
is about ``H_K / K``. Distractors are drawn per episode (at most ``n_pools`` distinct
pools, seeded): episode *e* uses pool ``e mod n_pools`` minus the speaker's own persona,
taken in the pool's order, so ``D_K`` is nested in ``D_{K'}`` for ``K < K'``.
Distractors are the run's other personas plus, optionally, personas from another corpus
(``--distractors``: a run of a few episodes has few personas of its own). Pool sizes
larger than the personas available are skipped.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simlab.analysis.corpus import Corpus

POOL_SIZES = (2, 5, 10, 20, 50)
DECIMALS = 6


def pool_sizes(c: Corpus, sizes: tuple[int, ...] = POOL_SIZES) -> list[int]:
    return [k for k in sorted(set(sizes)) if 2 <= k <= c.n_pool]


def persona_retrieval(c: Corpus, sizes: tuple[int, ...] = POOL_SIZES, seed: int = 0,
                      n_pools: int = 256) -> pl.DataFrame:
    """Per utterance: ``rr_k{K}`` for each usable pool size (null: unknown speaker)."""
    ks = pool_sizes(c, sizes)
    n = c.turns.height
    out = {f"rr_k{k}": np.full(n, np.nan) for k in ks}
    known = np.flatnonzero(c.own_persona >= 0)
    if not ks or len(known) == 0:
        return pl.DataFrame({"row": c.turns["row"], **out}, nan_to_null=True)
    m = min(max(ks), c.n_pool)
    ep_codes = c.turns["episode_id"].rank("dense").cast(pl.Int64).to_numpy() - 1
    n_pools = max(1, min(n_pools, int(ep_codes.max()) + 1))
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(c.n_pool)[:m] for _ in range(n_pools)]
    pool_of = ep_codes[known] % n_pools
    own_idx = c.own_persona[known]
    own_sim = np.round(c.own_sim[known], DECIMALS)
    for g in range(n_pools):
        sel = np.flatnonzero(pool_of == g)
        if len(sel) == 0:
            continue
        pool = pools[g]
        scores = np.round((c.U[known[sel]] @ c.P_pool[pool].T).toarray(), DECIMALS)
        valid = pool[None, :] != own_idx[sel, None]  # the own persona is not a distractor
        taken = np.cumsum(valid, axis=1)
        beats = scores >= own_sim[sel, None]
        for k in ks:
            in_pool = valid & (taken <= k - 1)
            rank = 1 + np.sum(beats & in_pool, axis=1)
            out[f"rr_k{k}"][known[sel]] = 1.0 / rank
    return pl.DataFrame({"row": c.turns["row"], **out}, nan_to_null=True)
