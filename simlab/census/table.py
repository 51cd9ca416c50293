"""The census table simlab samples from: the bundled compact table or a user's PUMS file.

Both go through one validation, so a wrong file fails with the file, the column and the
offending values named, not with an odd persona later. A full PUMS file (any year or
state, same column names) is prepared the way the bundled table was derived: typed,
checked, CA/TX-style missing columns hot-deck imputed, weights taken from ``PWGTP``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from simlab.census.codebook import (
    CA_TX_COLUMNS,
    CENSUS_DATA_DIR,
    CODE_COLUMNS,
    ID_COLUMNS,
    REQUIRED_COLUMNS,
    Codebook,
    load_codebook,
)
from simlab.census.impute import hot_deck

TABLE_FILE = "acs2024_persons.parquet"
#: Columns added by preparation: the sampling weight and the imputation flags.
PREPARED_COLUMNS = ("WEIGHT", "IMPUTED", "HD_DONOR", "HD_LEVEL")
IMPUTE_SEED = 2024


class CensusDataError(ValueError):
    """A census table is unusable; the message names the file and column."""


@dataclass(frozen=True)
class CensusTable:
    """Prepared person records (one row per record, ``WEIGHT`` = people it stands for)."""

    df: pl.DataFrame
    codebook: Codebook
    source: str

    @property
    def total_weight(self) -> float:
        return float(self.df["WEIGHT"].sum())


def default_table_path() -> Path:
    return CENSUS_DATA_DIR / TABLE_FILE


def _cast(df: pl.DataFrame, where: str) -> pl.DataFrame:
    casts = []
    for col in df.columns:
        if col in ("SERIALNO", "HD_DONOR"):
            casts.append(pl.col(col).cast(pl.String))
        elif col in ("STATE", "PUMA"):
            width = 2 if col == "STATE" else 5
            casts.append(pl.col(col).cast(pl.String).str.zfill(width))
        elif col in (*CODE_COLUMNS, "SPORDER", "PWGTP"):
            casts.append(pl.col(col).cast(pl.Int64, strict=True))
    try:
        return df.with_columns(casts)
    except pl.exceptions.PolarsError as exc:
        raise CensusDataError(f"{where}: a code column is not integer ({exc})") from None


def validate(df: pl.DataFrame, codebook: Codebook, where: str) -> None:
    """Raise :class:`CensusDataError` naming the first problem found per kind."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise CensusDataError(f"{where}: missing required column(s) {missing}")
    weight = "WEIGHT" if "WEIGHT" in df.columns else "PWGTP"
    bad_w = df.filter(pl.col(weight).is_null() | (pl.col(weight) <= 0))
    if bad_w.height:
        first = bad_w.row(0, named=True)
        raise CensusDataError(
            f"{where}: column {weight}: {bad_w.height} non-positive or missing weight(s), "
            f"first at SERIALNO={first['SERIALNO']} SPORDER={first['SPORDER']} "
            f"({weight}={first[weight]})")
    bad_age = df.filter(pl.col("AGEP").is_null() | ~pl.col("AGEP").is_between(0, 120))
    if bad_age.height:
        raise CensusDataError(f"{where}: column AGEP: {bad_age.height} value(s) outside "
                              f"0..120, e.g. {bad_age['AGEP'][0]}")
    for col in df.columns:
        valid = codebook.codes(col) if col in CODE_COLUMNS else None
        if valid is None:
            continue
        values = df[col].drop_nulls().unique()
        unknown = sorted(set(values.to_list()) - valid)
        if unknown:
            raise CensusDataError(
                f"{where}: column {col}: unknown code(s) {unknown[:10]}"
                f"{' …' if len(unknown) > 10 else ''} (not in the codebook)")
    if "STATE" in df.columns:
        states = set(codebook.columns["STATE"]["values"])
        unknown = sorted(set(df["STATE"].drop_nulls().unique().to_list()) - states)
        if unknown:
            raise CensusDataError(f"{where}: column STATE: unknown FIPS code(s) {unknown[:10]}")


def prepare(df: pl.DataFrame, codebook: Codebook, where: str,
            seed: int = IMPUTE_SEED) -> pl.DataFrame:
    """Type, validate and (where ``FULL_COLS`` is false) impute a raw PUMS frame."""
    df = _cast(df, where)
    validate(df, codebook, where)
    for col in CODE_COLUMNS:
        if col not in df.columns:  # optional columns absent from the user's file
            df = df.with_columns(pl.lit(None, pl.Int64).alias(col))
    if "PUMA" not in df.columns:
        df = df.with_columns(pl.lit(None, pl.String).alias("PUMA"))
    if "FULL_COLS" in df.columns:
        recipients = ~df["FULL_COLS"].fill_null(True)
    else:
        recipients = pl.Series([False] * df.height)
    imputable = [c for c in CODE_COLUMNS if c not in CA_TX_COLUMNS]
    df = hot_deck(df, recipients, imputable, np.random.default_rng(seed))
    df = df.with_columns(pl.col("PWGTP").cast(pl.Float64).alias("WEIGHT"))
    keep = [*ID_COLUMNS, "PWGTP", *CODE_COLUMNS, *PREPARED_COLUMNS]
    return df.select(keep)


def load_census(path: str | Path | None = None, codebook_path: str | None = None) -> CensusTable:
    """Load the bundled table (``path=None``) or prepare a user's PUMS person file.

    A file that already has a ``WEIGHT`` column is taken as prepared (the bundled table
    or a saved derivation); anything else is treated as raw PUMS.
    """
    p = Path(path) if path else default_table_path()
    where = str(p)
    if not p.is_file():
        raise CensusDataError(f"{where}: census table not found")
    codebook = load_codebook(codebook_path)
    try:
        if p.suffix in (".csv", ".gz"):
            df = pl.read_csv(p, infer_schema_length=10_000)
        else:
            df = pl.read_parquet(p)
    except Exception as exc:  # polars raises several types for unreadable files
        raise CensusDataError(f"{where}: cannot read ({exc})") from None
    if "WEIGHT" in df.columns:
        df = _cast(df, where)
        validate(df, codebook, where)
        for col in PREPARED_COLUMNS:
            if col not in df.columns:
                raise CensusDataError(f"{where}: prepared table lacks column {col}")
    else:
        df = prepare(df, codebook, where)
    return CensusTable(df=df, codebook=codebook, source=where)
