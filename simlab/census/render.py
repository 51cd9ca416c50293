"""Census records → persona table: readable labels, traits and a template description.

The persona table keeps every raw ACS column under its ACS name next to the readable
labels, so any persona can be traced to its source record (``SERIALNO``/``SPORDER``) and
checked with other census tools. Descriptions come from one deterministic template,
built with polars string expressions so a million rows render in about a second.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from simlab.census.codebook import Codebook
from simlab.census.recode import GROUPED
from simlab.census.traits import BIG_FIVE, TraitVocab, draw_traits
from simlab.personas.model import Persona

#: Readable attribute name → ACS column it labels.
LABELLED = {"sex": "SEX", "race": "RAC1P", "hispanic": "HISP", "education": "SCHL",
            "marital_status": "MAR", "employment_status": "ESR", "occupation": "OCCP",
            "industry": "INDP", "class_of_worker": "COW", "citizenship": "CIT",
            "military_service": "MIL", "state": "STATE", "disability": "DIS",
            "health_insurance": "HICOV"}



def money(col: str) -> pl.Expr:
    """Dollars with thousands separators (``58000`` → ``"$58,000"``), vectorised."""
    x = pl.col(col)
    a = x.abs()
    m, t, u = a // 1_000_000, (a // 1000) % 1000, a % 1000

    def pad(e: pl.Expr) -> pl.Expr:
        return e.cast(pl.String).str.zfill(3)

    body = (pl.when(m > 0).then(pl.concat_str(m.cast(pl.String), pl.lit(","), pad(t),
                                              pl.lit(","), pad(u)))
            .when(t > 0).then(pl.concat_str(t.cast(pl.String), pl.lit(","), pad(u)))
            .otherwise(u.cast(pl.String)))
    return pl.when(x < 0).then(pl.lit("-$") + body).otherwise(pl.lit("$") + body)


def _label(codebook: Codebook, column: str, name: str) -> pl.Expr:
    labels = codebook.labels(column)
    if column == "STATE":
        labels_s = {f"{k:02d}": v for k, v in labels.items()}
        return pl.col(column).replace_strict(labels_s, default=None,
                                             return_dtype=pl.Categorical).alias(name)
    # Categorical: a million repeated labels cost 4 bytes a row instead of a string each.
    return pl.col(column).replace_strict(labels, default=None,
                                         return_dtype=pl.Categorical).alias(name)


_ETH = {0: "Hispanic ", 1: "white ", 2: "Black ", 3: "Asian ", 4: ""}
_WORK = {1: " serves in the armed forces. ", 2: " is looking for work. ", 3: " is retired. ",
         4: " is not working for pay. ", 5: " "}


def _article(text: str) -> str:
    return ("an " if text[:1].lower() in "aeiou" else "a ") + text


def _code_phrases(codebook: Codebook) -> dict[str, dict[int, str]]:
    """Per-code phrases, pre-formatted once so a million rows only look them up."""
    occ = {k: _article(v.lower()) for k, v in codebook.labels("OCCP").items()}
    cow = {k: v.lower() for k, v in codebook.labels("COW").items()}
    who = {sex * 10 + e: f"{adj}{'woman' if sex == 2 else 'man'}"
           for sex in (1, 2) for e, adj in _ETH.items()}
    pron = {1: "He", 2: "She"}
    work = {sex * 10 + k: pron[sex] + text for sex in (1, 2) for k, text in _WORK.items()}
    edu = {int(k): v for k, v in _EDU_CODES.items()}
    mar = {1: "married", 2: "widowed", 3: "divorced", 4: "separated", 5: "never married"}
    levels = ("low", "medium", "high")
    personality = {}
    for code in range(3 ** len(BIG_FIVE)):
        parts, c = [], code
        for trait in BIG_FIVE:
            parts.append(f"{levels[c % 3]} {trait.replace('_', ' ')}")
            c //= 3
        personality[code] = "Personality: " + ", ".join(parts) + ". "
    return {"occ": occ, "cow": cow, "who": who, "work": work, "edu": edu, "mar": mar,
            "personality": personality, "pron": pron}


_EDU_CODES = {**{c: "no formal schooling" for c in (1, 2, 3)},
              **{c: "some schooling" for c in range(4, 12)},
              **{c: "some high school" for c in range(12, 16)},
              16: "a high school diploma", 17: "a GED", 18: "some college", 19: "some college",
              20: "an associate's degree", 21: "a bachelor's degree", 22: "a master's degree",
              23: "a professional degree", 24: "a doctorate"}


def _lookup(expr: pl.Expr, table: dict[int, str]) -> pl.Expr:
    return expr.replace_strict(table, default=None, return_dtype=pl.String)


def _description(codebook: Codebook) -> pl.Expr:
    """The template: who, work, schooling and family, money, personality, texture.

    Built from integer codes and per-code phrases (no per-row branching on strings),
    because string ``when/then`` chains evaluate every branch for every row."""
    ph = _code_phrases(codebook)
    age = pl.col("AGEP")
    an = (age.is_in([8, 11, 18]) | age.is_between(80, 89))
    eth = (pl.when(pl.col("HISP") > 1).then(0).otherwise(
        pl.col("RAC1P").replace_strict({1: 1, 2: 2, 6: 3}, default=4, return_dtype=pl.Int64)))
    esr = pl.col("ESR")
    kind = (pl.when(esr.is_in([4, 5])).then(1).when(esr == 3).then(2)
            .when(pl.col("life_stage") == "retired").then(3).when(esr == 6).then(4).otherwise(5))
    job = pl.concat_str(_lookup(pl.col("SEX"), ph["pron"]), pl.lit(" works as "),
                        _lookup(pl.when(esr.is_in([1, 2])).then(pl.col("OCCP")), ph["occ"]),
                        pl.lit(" ("), _lookup(pl.col("COW"), ph["cow"]), pl.lit("). "))
    income = (pl.when(pl.col("PINCP") <= 0).then(pl.lit(" and had no income last year"))
              .otherwise(pl.lit(" and had an income of about ") + pl.col("income")
                         + pl.lit(" last year")))
    return pl.concat_str([
        pl.col("name"), pl.when(an).then(pl.lit(" is an ")).otherwise(pl.lit(" is a ")),
        age.cast(pl.String), pl.lit("-year-old "),
        _lookup(pl.col("SEX") * 10 + eth, ph["who"]), pl.lit(" from "), pl.col("state"),
        pl.lit(". "), pl.coalesce(job, _lookup(pl.col("SEX") * 10 + kind, ph["work"])),
        _lookup(pl.col("SEX"), ph["pron"]), pl.lit(" has "),
        _lookup(pl.col("SCHL"), ph["edu"]).fill_null("no formal schooling"), pl.lit(", is "),
        _lookup(pl.col("MAR"), ph["mar"]).fill_null("never married"), income, pl.lit(". "),
        _lookup(pl.col("_big5_code"), ph["personality"]),
        pl.lit("Values "), pl.col("value_1"), pl.lit(" and "), pl.col("value_2"),
        pl.lit("; enjoys "), pl.col("hobby_1"), pl.lit(" and "), pl.col("hobby_2"),
        pl.lit("; "), pl.col("quirk"), pl.lit(". "),
        pl.lit("Speaks in a "), pl.col("speaking_style"), pl.lit(" way."),
    ], ignore_nulls=True)


def personas_frame(records: pl.DataFrame, codebook: Codebook, rng: np.random.Generator,
                   *, id_prefix: str = "census", vocab: TraitVocab | None = None) -> pl.DataFrame:
    """One persona row per record: id, name, labels, traits, description, raw ACS."""
    traits = draw_traits(records, rng, vocab)
    df = pl.concat([records, traits], how="horizontal")
    n = df.height
    width = max(6, len(str(n)))
    df = df.with_columns(
        (pl.lit(f"{id_prefix}-") + pl.int_range(1, n + 1).cast(pl.String).str.zfill(width))
        .alias("id"),
        pl.concat_str(pl.col("first_name"), pl.lit(" "), pl.col("last_name")).alias("name"),
        *(_label(codebook, col, name) for name, col in LABELLED.items()),
        (pl.col("OCCP").replace_strict(
            {int(k): g for k, g in codebook.columns["OCCP"].get("group", {}).items()},
            default=None, return_dtype=pl.Categorical).alias("occupation_group")),
        *(GROUPED[g]().cast(pl.Categorical).alias(f"{g}_group" if g in LABELLED else g)
          for g in ("age_group", "education", "income_bracket")),
        money("PINCP").alias("income"),
        pl.col("PINCP").alias("income_usd"),
        pl.col("WAGP").alias("wages_usd"),
        pl.col("WKHP").alias("hours_per_week"),
        pl.when(pl.col("SEX") == 2).then(pl.lit("woman")).otherwise(pl.lit("man"))
        .cast(pl.Categorical).alias("gender"),
    )
    return df.with_columns(_description(codebook).alias("description")).drop("_big5_code")


_CORE = {"id", "name", "AGEP", "gender", "occupation", "state", "description",
         "speaking_style", "_row", "value_1", "value_2", "hobby_1", "hobby_2",
         "goal_1", "goal_2"}


def to_personas(frame: pl.DataFrame) -> list[Persona]:
    """Persona objects for scenarios; every other column goes into ``attributes``."""
    out = []
    for row in frame.iter_rows(named=True):
        attrs: dict[str, Any] = {k: v for k, v in row.items() if k not in _CORE}
        attrs["AGEP"], attrs["state"] = row["AGEP"], row["state"]
        attrs["occupation"] = row["occupation"]
        attrs["big_five"] = {t: row[f"big5_{t}"] for t in BIG_FIVE}
        attrs["values"] = [row["value_1"], row["value_2"]]
        out.append(Persona(
            id=row["id"], name=row["name"], age=row["AGEP"], description=row["description"],
            gender=row["gender"], occupation=row["occupation"] or None,
            location=row["state"], speaking_style=row["speaking_style"],
            goals=(row["goal_1"], row["goal_2"]), hobbies=(row["hobby_1"], row["hobby_2"]),
            attributes=attrs,
        ))
    return out

