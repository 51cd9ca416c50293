"""Psychographics and idiosyncrasies for census records: Big Five, values, quirks, names.

Everything is drawn vectorised from the run's RNG, so a million personas cost a few
numpy calls. Where the literature gives a dependence on age or sex it is used, with the
effect sizes and sources listed in ``docs/census.md``; everything else is uniform over
the curated pools in ``personas/census/traits.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from simlab.census.codebook import CENSUS_DATA_DIR

BIG_FIVE = ("extraversion", "agreeableness", "conscientiousness", "negative_emotionality",
            "open_mindedness")  # the BFI-2 domain names (Soto & John 2017)
# Mean shift in SD units per decade of age away from 40 (positive = rises with age),
# and for women relative to men. Approximate effects from Soto et al. (2011) (age) and
# Weisberg, DeYoung & Hirsh (2011) / Costa et al. (2001) (sex); see docs/census.md.
AGE_SLOPE = {"extraversion": -0.03, "agreeableness": 0.07, "conscientiousness": 0.08,
             "negative_emotionality": -0.06, "open_mindedness": -0.04}
FEMALE_SHIFT = {"extraversion": 0.10, "agreeableness": 0.35, "conscientiousness": 0.10,
                "negative_emotionality": 0.40, "open_mindedness": 0.0}
TERCILE = 0.4307  # standard-normal terciles: below -> low, above +TERCILE -> high
ETHNICITIES = ("hispanic", "white", "black", "asian", "other")
LIFE_STAGES = ("teen", "student", "early_career", "job_seeker", "mid_career",
               "late_career", "caregiver", "retired", "military")


@dataclass(frozen=True)
class TraitVocab:
    first_names: dict[str, dict[str, list[str]]]
    last_names: dict[str, list[str]]
    values: list[dict[str, Any]]
    quirks: list[str]
    hobbies: list[str]
    speaking_styles: list[str]
    goals: dict[str, list[str]]


@cache
def load_traits(path: str | None = None) -> TraitVocab:
    p = Path(path) if path else CENSUS_DATA_DIR / "traits.yaml"
    data = yaml.safe_load(p.read_text())
    fields = TraitVocab.__dataclass_fields__
    missing = [f for f in fields if f not in data]
    if missing:
        raise ValueError(f"{p}: missing section(s) {missing}")
    for sex in ("female", "male"):
        for eth in ETHNICITIES:
            if not data["first_names"].get(sex, {}).get(eth):
                raise ValueError(f"{p}: first_names.{sex}.{eth} is missing or empty")
    for eth in ETHNICITIES:
        if not data["last_names"].get(eth):
            raise ValueError(f"{p}: last_names.{eth} is missing or empty")
    for stage in LIFE_STAGES:
        if len(data["goals"].get(stage) or []) < 2:
            raise ValueError(f"{p}: goals.{stage} needs at least two goals")
    return TraitVocab(**{f: data[f] for f in fields})


def ethnicity() -> pl.Expr:
    return (pl.when(pl.col("HISP") > 1).then(pl.lit("hispanic"))
            .when(pl.col("RAC1P") == 1).then(pl.lit("white"))
            .when(pl.col("RAC1P") == 2).then(pl.lit("black"))
            .when(pl.col("RAC1P") == 6).then(pl.lit("asian"))
            .otherwise(pl.lit("other")))


def life_stage() -> pl.Expr:
    """A coarse stage of life from age, employment and schooling (documented choice)."""
    a, e = pl.col("AGEP"), pl.col("ESR")
    working = e.is_in([1, 2])
    return (pl.when(a < 18).then(pl.lit("teen"))
            .when(e.is_in([4, 5])).then(pl.lit("military"))
            .when(e == 3).then(pl.lit("job_seeker"))
            .when((a < 25) & ~working.fill_null(False)).then(pl.lit("student"))
            .when(working & (a < 35)).then(pl.lit("early_career"))
            .when(working & (a < 55)).then(pl.lit("mid_career"))
            .when(working).then(pl.lit("late_career"))
            .when(a >= 62).then(pl.lit("retired"))
            .otherwise(pl.lit("caregiver")))


def _pick(groups: pl.Series, pools: dict[Any, list[str]], rng: np.random.Generator,
          k: int = 1) -> list[pl.Series]:
    """For each row, ``k`` distinct items from ``pools[group]`` (uniform).

    Works on integer positions into one flat pool and gathers strings once at the end,
    because per-row Python objects would cost seconds at a million rows."""
    keys = list(pools)
    flat = pl.Series([x for key in keys for x in pools[key]], dtype=pl.String)
    sizes = np.array([len(pools[key]) for key in keys], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    g = groups.replace_strict({key: i for i, key in enumerate(keys)},
                              return_dtype=pl.Int64).to_numpy()
    size, off = sizes[g], offsets[g]
    u = rng.random((g.size, k))
    first = (u[:, 0] * size).astype(np.int64)
    out = [flat.gather(off + first)]
    for j in range(1, k):  # distinct: step forward 1..size-1 from the first pick
        step = 1 + (u[:, j] * (size - 1)).astype(np.int64)
        out.append(flat.gather(off + (first + step) % size))
    return out


def draw_traits(records: pl.DataFrame, rng: np.random.Generator,
                vocab: TraitVocab | None = None) -> pl.DataFrame:
    """Trait columns for ``records`` (one row each), drawn from ``rng``."""
    v = vocab or load_traits()
    n = records.height
    base = records.select(ethnicity().alias("eth"), life_stage().alias("life_stage"),
                          pl.col("SEX"), pl.col("AGEP"))
    sex = base["SEX"].to_numpy()
    age = base["AGEP"].to_numpy().astype(np.float64)
    sex_eth = (pl.Series(np.where(sex == 2, "female/", "male/")) + base["eth"]).alias("g")
    name_pools = {f"{s}/{e}": pool for s, by_eth in v.first_names.items()
                  for e, pool in by_eth.items()}
    first = _pick(sex_eth, name_pools, rng)[0].alias("first_name")
    last = _pick(base["eth"], v.last_names, rng)[0].alias("last_name")
    decades = (np.clip(age, 18, 80) - 40) / 10
    female = (sex == 2).astype(np.float64)
    z = rng.standard_normal((n, len(BIG_FIVE)))
    levels = pl.Series(["low", "medium", "high"])
    cols: list[pl.Series] = [first, last]
    code = np.zeros(n, dtype=np.int64)  # base-3 code of the five levels, for templates
    for i, trait in enumerate(BIG_FIVE):
        zi = z[:, i] + AGE_SLOPE[trait] * decades + FEMALE_SHIFT[trait] * (female - 0.5)
        level = (zi >= -TERCILE).astype(np.int64) + (zi > TERCILE)
        code += level * 3 ** i
        cols.append(levels.gather(level).alias(f"big5_{trait}"))
        cols.append(pl.Series(f"big5_{trait}_t", np.rint(50 + 10 * zi).astype(np.int64)))
    cols.append(pl.Series("_big5_code", code))
    names = pl.Series([x["name"] for x in v.values], dtype=pl.String)
    slopes = np.array([float(x.get("age_slope", 0)) for x in v.values])
    # Gumbel-top-2: two values without replacement, weights exp(0.3·slope·decades).
    keys = 0.3 * np.outer(decades, slopes) + rng.gumbel(size=(n, slopes.size))
    top = np.argsort(-keys, axis=1)[:, :2]
    one = pl.Series(np.zeros(n, dtype=np.int64))
    quirk = _pick(one, {0: v.quirks}, rng)[0]
    hob = _pick(one, {0: v.hobbies}, rng, k=2)
    style = _pick(one, {0: v.speaking_styles}, rng)[0]
    goals = _pick(base["life_stage"], v.goals, rng, k=2)
    # Pairs stay as flat columns (value_1, value_2 …): list columns of strings cost
    # seconds to build at a million rows; ``to_personas`` makes the tuples.
    cat = pl.Categorical
    return pl.DataFrame([
        *(c.cast(cat) if c.dtype == pl.String else c for c in cols),
        base["life_stage"].cast(cat),
        *(s.cast(cat) for s in (
            names.gather(top[:, 0]).alias("value_1"), names.gather(top[:, 1]).alias("value_2"),
            quirk.alias("quirk"), hob[0].alias("hobby_1"), hob[1].alias("hobby_2"),
            style.alias("speaking_style"), goals[0].alias("goal_1"), goals[1].alias("goal_2"))),
    ])
