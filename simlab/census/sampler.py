"""Weighted sampling of whole census records: filters, strata, raking, plausibility.

Whole records are drawn (never attributes independently), so the joint distribution of
age, sex, race, education, occupation and income survives, as in PERSONA. Filters
renormalise the weights of what is left; stratification guarantees a minimum per group
and returns design weights so the sample can still be re-weighted to the population.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from simlab.census.rake import rake
from simlab.census.recode import GROUPED
from simlab.census.rules import violations
from simlab.census.table import CensusTable


@dataclass(frozen=True)
class CensusFilter:
    """Which records may be drawn. ``states`` takes postal codes, FIPS codes or names;
    ``where`` restricts any ACS column to a set of codes, e.g. ``{"MIL": [2]}``."""

    states: tuple[str, ...] = ()
    min_age: int | None = 18
    max_age: int | None = None
    employed: bool | None = None
    where: Mapping[str, Sequence[int]] = field(default_factory=dict)


@dataclass
class CensusSample:
    """Sampled records (``weight`` = people each stands for) and how they were drawn."""

    records: pl.DataFrame
    eligible_records: int
    eligible_weight: float
    rejected: Counter  # rule -> draws it rejected (a draw may break several rules)
    rejected_draws: int
    draws: int

    @property
    def rejection_rate(self) -> float:
        return self.rejected_draws / self.draws if self.draws else 0.0


def _state_codes(table: CensusTable, states: Sequence[str]) -> list[str]:
    entry = table.codebook.columns["STATE"]
    lookup: dict[str, str] = {}
    for fips, label in entry["values"].items():
        name, postal = label.split("/")[0], label.split("/")[-1]
        for key in (fips, str(int(fips)), name.lower(), postal.lower()):
            lookup[key] = fips
    out = []
    for s in states:
        code = lookup.get(str(s).strip().lower())
        if code is None:
            raise ValueError(f"population.states: unknown state {s!r} (use a postal code "
                             "like 'CA', a FIPS code like '06', or a name)")
        out.append(code)
    return out


def eligible(table: CensusTable, flt: CensusFilter) -> pl.DataFrame:
    """The records passing ``flt`` with their row index in the table (``_row``)."""
    df = table.df.with_row_index("_row")
    cond = pl.lit(True)
    if flt.states:
        cond &= pl.col("STATE").is_in(_state_codes(table, flt.states))
    if flt.min_age is not None:
        cond &= pl.col("AGEP") >= flt.min_age
    if flt.max_age is not None:
        cond &= pl.col("AGEP") <= flt.max_age
    if flt.employed is not None:
        emp = pl.col("ESR").is_in([1, 2, 4, 5]).fill_null(False)
        cond &= emp if flt.employed else ~emp
    for col, codes in flt.where.items():
        if col not in table.df.columns:
            raise ValueError(f"population.where: unknown ACS column {col!r}")
        cond &= pl.col(col).is_in(list(codes)).fill_null(False)
    out = df.filter(cond)
    if out.height == 0:
        raise ValueError(f"population filters {flt} leave no census records")
    return out


def _with_group(df: pl.DataFrame, name: str) -> pl.Series:
    if name in GROUPED:
        return df.select(GROUPED[name]()).to_series()
    if name in df.columns:
        return df[name]
    raise ValueError(f"population.strata/marginals: unknown attribute {name!r} "
                     f"(choose an ACS column or one of {sorted(GROUPED)})")


def _draw(w: np.ndarray, k: int, rng: np.random.Generator, replace: bool) -> np.ndarray:
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if replace:
        cum = np.cumsum(w)
        return np.minimum(np.searchsorted(cum, rng.random(k) * cum[-1], side="right"),
                          len(w) - 1)
    if k > np.count_nonzero(w):
        raise ValueError(f"population.n: {k} draws without replacement but only "
                         f"{np.count_nonzero(w)} eligible records")
    # Efraimidis–Spirakis: the k smallest Exp(1)/w keys are a weighted sample w/o replacement.
    keys = rng.exponential(size=len(w)) / np.where(w > 0, w, np.nan)
    keys = np.nan_to_num(keys, nan=np.inf)
    return np.argpartition(keys, k - 1)[:k]


def _systematic(w: np.ndarray, k: int, order: np.ndarray, rng: np.random.Generator
                ) -> np.ndarray:
    """Systematic PPS over records in ``order``: ``k`` equally spaced points on the
    cumulative weight, from a random start. Records are still drawn with probability
    proportional to weight, but every run of records in the order (a state, an age
    group, a raking cell) gets within one draw of its expected count."""
    cum = np.cumsum(w[order])
    step = cum[-1] / k
    points = (rng.random() + np.arange(k)) * step
    picks = order[np.minimum(np.searchsorted(cum, points, side="right"), order.size - 1)]
    return picks[rng.permutation(k)]


class CensusSampler:
    """Draw persona source records from a :class:`CensusTable`."""

    def __init__(self, table: CensusTable) -> None:
        self.table = table

    def weights(self, pool: pl.DataFrame,
                marginals: Mapping[str, Mapping[Any, float]] | None) -> np.ndarray:
        w = pool["WEIGHT"].to_numpy().astype(np.float64)
        if not marginals:
            return w
        cols = pool.with_columns(_with_group(pool, k).alias(f"_m_{k}") for k in marginals)
        renamed = cols.select(pl.col(f"_m_{k}").alias(k) for k in marginals)
        return rake(renamed, w, marginals)

    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        flt: CensusFilter | None = None,
        *,
        replace: bool = True,
        method: str = "systematic",
        strata: str | None = None,
        min_per_stratum: int = 0,
        marginals: Mapping[str, Mapping[Any, float]] | None = None,
        check_rules: bool = True,
        max_rounds: int = 20,
    ) -> CensusSample:
        """``n`` records, weighted (after raking to ``marginals`` if given), each
        stratum of ``strata`` holding at least ``min_per_stratum``. Implausible draws
        (:mod:`simlab.census.rules`) are replaced by fresh draws from the same stratum.

        With replacement, ``method="systematic"`` (default) draws by systematic PPS over
        records ordered by the raking attributes, state, sex and age group (implicit
        stratification: those margins come out within a draw or so of exact);
        ``"multinomial"`` makes independent weighted draws."""
        if n < 1:
            raise ValueError(f"population.n: need at least 1 persona, got {n}")
        if method not in ("systematic", "multinomial"):
            raise ValueError(f"population.method: expected 'systematic' or 'multinomial', "
                             f"got {method!r}")
        pool = eligible(self.table, flt or CensusFilter())
        w = self.weights(pool, marginals)
        if check_rules:
            bad = violations(pool, self.table.codebook)
            rules, bad_np = bad.columns, bad.to_numpy().astype(bool)
            bad_any = bad_np.any(axis=1)
        else:
            rules, bad_np = [], np.zeros((pool.height, 0), dtype=bool)
            bad_any = np.zeros(pool.height, dtype=bool)
        groups = (_with_group(pool, strata).to_numpy() if strata
                  else np.zeros(pool.height, dtype=np.int8))
        systematic = replace and method == "systematic"
        if systematic:
            cells = [*(marginals or {}), "STATE", "sex", "age_group"]
            key = np.zeros(pool.height, dtype=np.int64)
            for c in dict.fromkeys(cells):
                uniq, codes = np.unique(_with_group(pool, c).to_numpy(), return_inverse=True)
                key = key * (uniq.size + 1) + codes
            ranked = np.lexsort((rng.random(pool.height), key))
        alloc = self._allocate(groups, w, n, min_per_stratum)
        rejected: Counter = Counter()
        draws = n_rejected = 0
        chosen_parts, weight_parts = [], []
        for g, k in alloc.items():
            members = np.flatnonzero(groups == g)
            gw = w[members]
            got: list[np.ndarray] = []
            need = k
            taken = np.zeros(members.size, dtype=bool)
            for _ in range(max_rounds):
                if need == 0:
                    break
                avail = np.where(taken, 0.0, gw) if not replace else gw
                if systematic and need == k:  # first round; redraws of rejects are iid
                    in_group = ranked[groups[ranked] == g] if strata else ranked
                    local = np.searchsorted(members, in_group)
                    picks = _systematic(gw, need, local, rng)
                else:
                    picks = _draw(avail, need, rng, replace)
                draws += picks.size
                bad_pick = bad_any[members[picks]]
                n_rejected += int(bad_pick.sum())
                if bad_pick.any():
                    hits = bad_np[members[picks]].sum(axis=0)
                    rejected.update({r: int(h) for r, h in zip(rules, hits, strict=True) if h})
                if not replace:
                    taken[picks] = True
                good = picks[~bad_pick]
                got.append(good)
                need -= good.size
            if need:
                raise ValueError(f"population: could not draw {k} plausible records for "
                                 f"stratum {g!r} in {max_rounds} rounds")
            idx = members[np.concatenate(got)]
            chosen_parts.append(idx)
            weight_parts.append(np.full(idx.size, gw.sum() / k))
        order = np.concatenate(chosen_parts)
        weights = np.concatenate(weight_parts)
        if strata:  # strata were drawn one after another; mix them back up
            perm = rng.permutation(order.size)
            order, weights = order[perm], weights[perm]
        records = pool[order].with_columns(pl.Series("weight", weights))
        return CensusSample(records=records, eligible_records=pool.height,
                            eligible_weight=float(w.sum()), rejected=rejected,
                            rejected_draws=n_rejected, draws=draws)

    @staticmethod
    def _allocate(groups: np.ndarray, w: np.ndarray, n: int, minimum: int) -> dict[Any, int]:
        """Counts per stratum: ``minimum`` each, the rest proportional to weight
        (largest remainders), so the total is exactly ``n``."""
        keys, inverse = np.unique(groups, return_inverse=True)
        gw = np.bincount(inverse, weights=w)
        base = np.full(keys.size, minimum, dtype=np.int64)
        rest = n - int(base.sum())
        if rest < 0:
            raise ValueError(f"population.min_per_stratum: {minimum} × {keys.size} strata "
                             f"exceeds n={n}")
        share = gw / gw.sum() * rest
        extra = np.floor(share).astype(np.int64)
        remainder = rest - int(extra.sum())
        extra[np.argsort(-(share - extra), kind="stable")[:remainder]] += 1
        counts = base + extra
        return {k.item() if hasattr(k, "item") else k: int(c)
                for k, c in zip(keys, counts, strict=True) if c > 0}
