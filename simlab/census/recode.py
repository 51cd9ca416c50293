"""Grouped recodes of ACS columns: the categories reports, filters and raking speak in.

One definition each, used by the fidelity report, the raking targets and stratified
sampling alike, so "age group" means the same thing everywhere.
"""

from __future__ import annotations

import polars as pl

AGE_GROUPS = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+")
EDUCATION_GROUPS = ("Below high school", "High school or GED", "Some college or associate's",
                    "Bachelor's", "Graduate degree")
EMPLOYMENT_GROUPS = ("Employed", "Unemployed", "Not in labor force", "Armed forces",
                     "Under 16")
INCOME_BRACKETS = ("Under 15", "No income or loss", "$1-$24,999", "$25,000-$49,999",
                   "$50,000-$74,999", "$75,000-$99,999", "$100,000-$149,999", "$150,000+")
RACE_GROUPS = {1: "White", 2: "Black", 3: "American Indian or Alaska Native",
               4: "American Indian or Alaska Native", 5: "American Indian or Alaska Native",
               6: "Asian", 7: "Native Hawaiian or Pacific Islander", 8: "Some other race",
               9: "Two or more races"}
MARITAL = {1: "Married", 2: "Widowed", 3: "Divorced", 4: "Separated", 5: "Never married"}


def age_group() -> pl.Expr:
    a = pl.col("AGEP")
    return (pl.when(a < 18).then(pl.lit(AGE_GROUPS[0])).when(a < 25).then(pl.lit(AGE_GROUPS[1]))
            .when(a < 35).then(pl.lit(AGE_GROUPS[2])).when(a < 45).then(pl.lit(AGE_GROUPS[3]))
            .when(a < 55).then(pl.lit(AGE_GROUPS[4])).when(a < 65).then(pl.lit(AGE_GROUPS[5]))
            .when(a < 75).then(pl.lit(AGE_GROUPS[6])).otherwise(pl.lit(AGE_GROUPS[7]))
            .alias("age_group"))


def education_group() -> pl.Expr:
    s = pl.col("SCHL")
    return (pl.when(s.is_null()).then(pl.lit(EDUCATION_GROUPS[0]))
            .when(s <= 15).then(pl.lit(EDUCATION_GROUPS[0]))
            .when(s <= 17).then(pl.lit(EDUCATION_GROUPS[1]))
            .when(s <= 20).then(pl.lit(EDUCATION_GROUPS[2]))
            .when(s == 21).then(pl.lit(EDUCATION_GROUPS[3]))
            .otherwise(pl.lit(EDUCATION_GROUPS[4])).alias("education_group"))


def employment_group() -> pl.Expr:
    e = pl.col("ESR")
    return (pl.when(e.is_null()).then(pl.lit("Under 16"))
            .when(e.is_in([1, 2])).then(pl.lit("Employed"))
            .when(e == 3).then(pl.lit("Unemployed"))
            .when(e.is_in([4, 5])).then(pl.lit("Armed forces"))
            .otherwise(pl.lit("Not in labor force")).alias("employment_group"))


def income_bracket() -> pl.Expr:
    i = pl.col("PINCP")
    b = INCOME_BRACKETS
    return (pl.when(i.is_null()).then(pl.lit(b[0])).when(i <= 0).then(pl.lit(b[1]))
            .when(i < 25_000).then(pl.lit(b[2])).when(i < 50_000).then(pl.lit(b[3]))
            .when(i < 75_000).then(pl.lit(b[4])).when(i < 100_000).then(pl.lit(b[5]))
            .when(i < 150_000).then(pl.lit(b[6])).otherwise(pl.lit(b[7]))
            .alias("income_bracket"))


def race_group() -> pl.Expr:
    return pl.col("RAC1P").replace_strict(RACE_GROUPS, return_dtype=pl.String).alias("race_group")


def hispanic() -> pl.Expr:
    return (pl.when(pl.col("HISP") > 1).then(pl.lit("Hispanic"))
            .otherwise(pl.lit("Not Hispanic")).alias("hispanic_origin"))


def marital_status() -> pl.Expr:
    return (pl.col("MAR").replace_strict(MARITAL, default=None, return_dtype=pl.String)
            .fill_null("Never married").alias("marital_group"))


def sex() -> pl.Expr:
    return pl.col("SEX").replace_strict({1: "Male", 2: "Female"}, return_dtype=pl.String) \
        .alias("sex_group")


#: Report/raking attribute name → expression building it from ACS columns.
GROUPED = {
    "age_group": age_group, "sex": sex, "race": race_group, "hispanic_origin": hispanic,
    "education": education_group, "marital_status": marital_status,
    "employment_status": employment_group, "income_bracket": income_bracket,
}


def with_groups(df: pl.DataFrame | pl.LazyFrame, names: tuple[str, ...] | None = None):
    """``df`` plus the grouped columns, named ``g_<attribute>`` (e.g. ``g_age_group``)."""
    chosen = names or tuple(GROUPED)
    return df.with_columns(GROUPED[n]().alias(f"g_{n}") for n in chosen)
