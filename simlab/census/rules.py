"""Plausibility rules for census-derived personas, vectorised over a whole table.

Real ACS records almost always pass; the rules guard against what simlab itself or a
user introduces: hot-deck donors, hand-edited or synthetic PUMS-shaped files, raking
that up-weights rare cells. Each rule is a named polars expression that is true when a
record is implausible, so rejections can be counted per rule and tested one by one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import polars as pl

from simlab.census.codebook import Codebook

# Youngest plausible age for each SCHL level (bachelor's at 19 happens; at 15 it does not).
MIN_AGE_FOR_SCHOOLING = {16: 15, 17: 15, 20: 17, 21: 19, 22: 21, 23: 22, 24: 23}
# Occupations that require at least a bachelor's degree to be licensed.
_DEGREE_JOBS = re.compile(r"physicians|surgeons|dentists|lawyers|judges|pharmacists|"
                          r"veterinarians|optometrists|podiatrists", re.I)


def _degree_occupations(codebook: Codebook) -> list[int]:
    values = codebook.columns.get("OCCP", {}).get("values", {})
    return sorted(int(k) for k, v in values.items() if k.isdigit() and _DEGREE_JOBS.search(v))


def _schooling_too_young() -> pl.Expr:
    cond = pl.lit(False)
    for level, age in MIN_AGE_FOR_SCHOOLING.items():
        cond |= (pl.col("SCHL") == level) & (pl.col("AGEP") < age)
    return cond


def rule_exprs(codebook: Codebook) -> dict[str, pl.Expr]:
    """Rule name → expression (true = implausible). Nulls count as 'not applicable'."""
    age = pl.col("AGEP")
    return {
        "schooling_too_young": _schooling_too_young(),
        "occupation_under_16": pl.col("OCCP").is_not_null() & (age < 16),
        "licensed_job_without_degree":
            pl.col("OCCP").is_in(_degree_occupations(codebook)) & (pl.col("SCHL") < 21),
        "married_under_15": pl.col("MAR").is_in([1, 2, 3, 4]) & (age < 15),
        "income_under_15": pl.col("PINCP").is_not_null() & (age < 15),
        "high_income_minor": (pl.col("PINCP") > 250_000) & (age < 18),
        "active_duty_age": (pl.col("MIL") == 1) & ((age < 17) | (age > 65)),
        "veteran_under_18": (pl.col("MIL") == 2) & (age < 18),
        "armed_forces_not_serving": pl.col("ESR").is_in([4, 5]) & (pl.col("MIL") != 1),
        "employed_without_hours": pl.col("ESR").is_in([1, 4]) & pl.col("WKHP").is_null(),
        "hours_without_work_history": pl.col("WKHP").is_not_null() & (age < 16),
    }


RULE_NAMES = tuple(rule_exprs(Codebook({})))


def violations(df: pl.DataFrame, codebook: Codebook,
               only: Callable[[str], bool] | None = None) -> pl.DataFrame:
    """One boolean column per rule, true where the record breaks it."""
    exprs = rule_exprs(codebook)
    return df.select((e.fill_null(False).alias(n) for n, e in exprs.items()
                      if only is None or only(n)))
