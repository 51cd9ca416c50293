"""Hot-deck imputation of the work and income columns missing from CA/TX records.

The 2024 file carries only 12 columns for California and Texas (about 21% of the
weighted population). Dropping them would bias every national marginal; leaving the work
columns null would make a fifth of the population jobless and incomeless. Instead each
such record borrows *all* missing columns from one donor record in another state, drawn
with probability proportional to the donor's weight within the same cell of age band,
sex, race, Hispanic origin, education, citizenship and disability. Copying one donor's
whole vector keeps the joint distribution of occupation, hours and income coherent.
Cells without a donor fall back to coarser cells; the level used is recorded.
Imputed rows are flagged (``IMPUTED``) and name their donor (``HD_DONOR``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

# Coarsening steps: each is the list of cell variables used at that level.
_CELL_LEVELS: tuple[tuple[str, ...], ...] = (
    ("age5", "SEX", "race", "hisp", "educ", "cit", "DIS"),
    ("age5", "SEX", "race", "hisp", "educ", "cit"),
    ("age5", "SEX", "hisp", "educ"),
    ("age5", "SEX", "educ"),
    ("age5", "SEX"),
)


_AGE_BREAKS = (5, 10, 15, 16, 18, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85)


def _cell_vars() -> list[pl.Expr]:
    schl = pl.col("SCHL").fill_null(0)
    return [
        # Age bands break at 15, 16 and 18, where ACS universes change (income is asked
        # from 15, work from 16), so no donor hands an adult a child's "not applicable".
        pl.sum_horizontal([(pl.col("AGEP") >= b).cast(pl.Int64) for b in _AGE_BREAKS])
        .alias("age5"),
        pl.col("SEX").fill_null(0).alias("SEX"),
        pl.col("RAC1P").replace_strict({1: 1, 2: 2, 6: 6, 8: 8, 9: 9}, default=3,
                                       return_dtype=pl.Int64).alias("race"),
        (pl.col("HISP").fill_null(1) > 1).cast(pl.Int64).alias("hisp"),
        pl.when(schl < 16).then(0).when(schl < 18).then(1).when(schl < 20).then(2)
        .when(schl == 20).then(3).when(schl == 21).then(4).when(schl == 22).then(5)
        .otherwise(6).alias("educ"),
        pl.col("CIT").fill_null(1).replace_strict({1: 0, 2: 0, 3: 0, 4: 1, 5: 2}, default=0,
                                                  return_dtype=pl.Int64).alias("cit"),
        pl.col("DIS").fill_null(2).alias("DIS"),
    ]


def _cell_key(df: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
    """An exact int64 key per row for the given (small, non-negative int) variables."""
    key = np.zeros(df.height, dtype=np.int64)
    for name in names:
        col = df[name].to_numpy().astype(np.int64)
        key = key * 128 + col  # every variable is < 128
    return key


def hot_deck(
    df: pl.DataFrame,
    recipients: pl.Series,
    columns: Sequence[str],
    rng: np.random.Generator,
    weight: str = "PWGTP",
) -> pl.DataFrame:
    """Fill ``columns`` of the rows flagged in ``recipients`` from weighted donors.

    Adds ``IMPUTED`` (bool), ``HD_DONOR`` (donor ``SERIALNO-SPORDER``) and ``HD_LEVEL``
    (0 = finest cell). Donors are the non-recipient rows. Deterministic given ``rng``.
    """
    if not recipients.any():
        return df.with_columns(pl.lit(False).alias("IMPUTED"),
                               pl.lit(None, pl.String).alias("HD_DONOR"),
                               pl.lit(None, pl.Int8).alias("HD_LEVEL"))
    cells = df.select(_cell_vars())
    is_rec = recipients.to_numpy()
    donors = np.flatnonzero(~is_rec)
    todo = np.flatnonzero(is_rec)
    if donors.size == 0:
        raise ValueError("census hot-deck: no donor records (every row needs imputation)")
    w = df[weight].to_numpy().astype(np.float64)
    chosen = np.full(df.height, -1, dtype=np.int64)
    level_of = np.full(df.height, -1, dtype=np.int8)
    for level, names in enumerate(_CELL_LEVELS):
        if todo.size == 0:
            break
        key = _cell_key(cells, names)
        order = donors[np.argsort(key[donors], kind="stable")]
        dkeys = key[order]
        cum = np.cumsum(w[order])
        uniq, first = np.unique(dkeys, return_index=True)
        last = np.r_[first[1:], dkeys.size] - 1
        start = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
        start[first == 0] = 0.0
        total = cum[last] - start
        pos = np.searchsorted(uniq, key[todo])
        pos_c = np.minimum(pos, uniq.size - 1)
        found = uniq[pos_c] == key[todo]
        hit = todo[found]
        cell = pos_c[found]
        target = start[cell] + rng.random(hit.size) * total[cell]
        idx = np.searchsorted(cum, target, side="right")
        idx = np.minimum(np.maximum(idx, first[cell]), last[cell])
        chosen[hit] = order[idx]
        level_of[hit] = level
        todo = todo[~found]
    if todo.size:  # only possible if the coarsest cell (age band × sex) has no donor
        raise ValueError(f"census hot-deck: {todo.size} records found no donor even by "
                         "age band and sex")
    src = np.where(is_rec, chosen, np.arange(df.height))
    gathered = df.select(columns)[src]
    donor = df.select("SERIALNO", "SPORDER")[src]
    donor_id = donor["SERIALNO"] + "-" + donor["SPORDER"].cast(pl.String)
    return df.with_columns(gathered).with_columns(
        pl.Series("IMPUTED", is_rec),
        pl.when(pl.Series(is_rec)).then(donor_id).otherwise(None).alias("HD_DONOR"),
        pl.when(pl.Series(is_rec)).then(pl.Series(level_of)).otherwise(None)
        .cast(pl.Int8).alias("HD_LEVEL"),
    )
