"""Census populations: sampling fidelity, filters, strata, raking, rules, bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simlab.census.codebook import load_codebook, readable_occupation
from simlab.census.fidelity import fidelity
from simlab.census.impute import hot_deck
from simlab.census.population import CensusSpec, census_population
from simlab.census.rake import RakingError, rake
from simlab.census.render import money
from simlab.census.rules import RULE_NAMES, violations
from simlab.census.sampler import CensusFilter, CensusSampler, eligible
from simlab.census.table import CensusDataError, load_census


@pytest.fixture(scope="module")
def table():
    return load_census()


def test_bundled_table_is_compact_weighted_and_flags_imputation(table) -> None:
    df = table.df
    assert 150_000 < df.height <= 200_000
    assert abs(table.total_weight - 340_110_990) < 1  # calibrated to the full file
    catx = df.filter(pl.col("STATE").is_in(["06", "48"]))
    assert catx["IMPUTED"].all() and catx["HD_DONOR"].null_count() == 0
    assert not df.filter(~pl.col("STATE").is_in(["06", "48"]))["IMPUTED"].any()
    # Adults in CA/TX got work columns from donors, never a child's "not applicable".
    assert catx.filter(pl.col("AGEP") >= 16)["ESR"].null_count() == 0


def test_marginals_of_a_sample_match_the_weighted_census(table) -> None:
    rng = np.random.default_rng(7)
    sample = CensusSampler(table).sample(20_000, rng, CensusFilter(min_age=18),
                                         method="multinomial")
    summary, _ = fidelity(sample.records, eligible(table, CensusFilter(min_age=18)))
    tvds = dict(summary.select("check", "tvd").iter_rows())
    for attr in ("age_group", "sex", "race", "hispanic_origin", "education",
                 "marital_status", "employment_status"):
        assert tvds[attr] < 0.03, (attr, tvds[attr])


def test_fidelity_tvd_by_hand() -> None:
    census = pl.DataFrame({"AGEP": [30, 30, 30], "SEX": [1, 2, 2], "WEIGHT": [1.0, 1.0, 2.0]})
    sample = pl.DataFrame({"AGEP": [30, 30], "SEX": [1, 2]})
    summary, detail = fidelity(sample, census, attributes=["sex"], joints=[])
    # census: male 1/4, female 3/4; sample: 1/2, 1/2 -> TVD = ½(|.5-.25|+|.5-.75|) = .25
    assert summary["tvd"].to_list() == [pytest.approx(0.25)]
    assert dict(zip(detail["category"], detail["census_share"], strict=True)) == \
        {"Female": 0.75, "Male": 0.25}


def test_same_seed_same_population_and_different_seed_differs() -> None:
    spec = CensusSpec(n=300)
    a = census_population(spec, np.random.default_rng(5)).frame
    b = census_population(spec, np.random.default_rng(5)).frame
    c = census_population(spec, np.random.default_rng(6)).frame
    assert a.equals(b)
    assert not a.equals(c)


def test_filters_renormalise_and_name_bad_values(table) -> None:
    rng = np.random.default_rng(1)
    flt = CensusFilter(states=("CA", "tx"), min_age=30, max_age=40, employed=True)
    got = CensusSampler(table).sample(500, rng, flt).records
    assert set(got["STATE"]) <= {"06", "48"}
    assert got["AGEP"].is_between(30, 40).all()
    assert got["ESR"].is_in([1, 2, 4, 5]).all()
    with pytest.raises(ValueError, match="unknown state 'Atlantis'"):
        CensusSampler(table).sample(5, rng, CensusFilter(states=("Atlantis",)))
    with pytest.raises(ValueError, match="unknown ACS column 'NOPE'"):
        CensusSampler(table).sample(5, rng, CensusFilter(where={"NOPE": [1]}))


def test_stratified_minimum_per_state_with_design_weights(table) -> None:
    rng = np.random.default_rng(2)
    s = CensusSampler(table).sample(600, rng, CensusFilter(), strata="STATE", min_per_stratum=5)
    counts = s.records.group_by("STATE").len()
    assert s.records.height == 600 and counts.height == 51
    assert counts["len"].min() >= 5
    # Design weights add up to the population they represent.
    assert s.records["weight"].sum() == pytest.approx(s.eligible_weight, rel=1e-9)


def test_without_replacement_never_repeats_a_record(table) -> None:
    rng = np.random.default_rng(3)
    pool = eligible(table, CensusFilter(states=("WY",))).height
    got = CensusSampler(table).sample(pool - 10, rng, CensusFilter(states=("WY",)),
                                      replace=False, check_rules=False)
    assert got.records["_row"].n_unique() == pool - 10
    with pytest.raises(ValueError, match=f"only {pool} eligible records"):
        CensusSampler(table).sample(pool + 1, rng, CensusFilter(states=("WY",)), replace=False)


def test_raking_by_hand() -> None:
    df = pl.DataFrame({"sex": ["M", "M", "F", "F"], "age": ["young", "old"] * 2})
    w = rake(df, np.ones(4), {"sex": {"F": 0.6, "M": 0.4}, "age": {"young": 0.3, "old": 0.7}})
    # Independent margins from a uniform start: w = total · p(sex) · p(age).
    assert w == pytest.approx([4 * .4 * .3, 4 * .4 * .7, 4 * .6 * .3, 4 * .6 * .7])
    with pytest.raises(RakingError, match=r"marginals\.sex: shares sum to 0\.900000"):
        rake(df, np.ones(4), {"sex": {"F": 0.5, "M": 0.4}})
    with pytest.raises(RakingError, match=r"categories \['M'\] .* no target share"):
        rake(df, np.ones(4), {"sex": {"F": 1.0}})


def test_raked_population_reproduces_the_marginals(table) -> None:
    targets = {"sex": {"Female": 0.6, "Male": 0.4},
               "education": {"Below high school": 0.1, "High school or GED": 0.2,
                             "Some college or associate's": 0.2, "Bachelor's": 0.3,
                             "Graduate degree": 0.2}}
    sampler = CensusSampler(table)
    pool = eligible(table, CensusFilter())
    w = sampler.weights(pool, targets)
    female = pool.select(pl.col("SEX") == 2).to_series().to_numpy()
    assert w[female].sum() / w.sum() == pytest.approx(0.6, abs=1e-9)
    s = sampler.sample(20_000, np.random.default_rng(4), CensusFilter(), marginals=targets)
    share = (s.records["SEX"] == 2).mean()
    assert abs(share - 0.6) <= 0.001


def test_plausibility_rules_flag_hand_built_records() -> None:
    base = {"AGEP": 40, "SCHL": 21, "OCCP": None, "MAR": 1, "PINCP": 50_000, "MIL": 4,
            "ESR": 6, "WKHP": None}
    cases = {
        "schooling_too_young": {"AGEP": 16, "SCHL": 22, "MAR": 5, "PINCP": 0},
        "occupation_under_16": {"AGEP": 14, "SCHL": 10, "OCCP": 4720, "MAR": 5, "PINCP": None},
        "licensed_job_without_degree": {"OCCP": 3090, "SCHL": 16},  # physician
        "married_under_15": {"AGEP": 13, "SCHL": 10, "MAR": 1, "PINCP": None},
        "income_under_15": {"AGEP": 12, "SCHL": 8, "MAR": 5, "PINCP": 1000},
        "high_income_minor": {"AGEP": 16, "SCHL": 13, "MAR": 5, "PINCP": 300_000},
        "active_duty_age": {"AGEP": 70, "MIL": 1},
        "veteran_under_18": {"AGEP": 17, "SCHL": 14, "MAR": 5, "MIL": 2},
        "armed_forces_not_serving": {"ESR": 4, "MIL": 4, "WKHP": 40},
        "employed_without_hours": {"ESR": 1, "WKHP": None},
        "hours_without_work_history": {"AGEP": 15, "SCHL": 12, "MAR": 5, "WKHP": 20,
                                       "PINCP": 500},
    }
    assert set(cases) == set(RULE_NAMES)
    rows = [base] + [{**base, **c} for c in cases.values()]
    v = violations(pl.DataFrame(rows, infer_schema_length=None), load_codebook())
    assert not v.row(0, named=True)[next(iter(cases))] and not any(v.row(0))
    for i, rule in enumerate(cases, start=1):
        flagged = [k for k, hit in v.row(i, named=True).items() if hit]
        assert rule in flagged, (rule, flagged)


def test_hot_deck_copies_a_whole_donor_vector_from_the_same_cell() -> None:
    df = pl.DataFrame({
        "SERIALNO": ["d1", "d2", "r1"], "SPORDER": [1, 1, 1], "PWGTP": [10, 10, 10],
        "AGEP": [40, 41, 42], "SEX": [1, 2, 2], "RAC1P": [1, 1, 1], "HISP": [1, 1, 1],
        "SCHL": [21, 21, 21], "CIT": [1, 1, 1], "DIS": [2, 2, 2],
        "OCCP": [10, 3255, None], "PINCP": [90_000, 70_000, None]})
    out = hot_deck(df, pl.Series([False, False, True]), ["OCCP", "PINCP"],
                   np.random.default_rng(0))
    r = out.row(2, named=True)
    assert (r["OCCP"], r["PINCP"], r["HD_DONOR"], r["HD_LEVEL"]) == (3255, 70_000, "d2-1", 0)
    assert out["IMPUTED"].to_list() == [False, False, True]


def _write(tmp_path: Path, df: pl.DataFrame) -> Path:
    path = tmp_path / "pums.parquet"
    df.write_parquet(path)
    return path


def _good_pums() -> pl.DataFrame:
    return pl.DataFrame({
        "SERIALNO": ["a", "b"], "SPORDER": [1, 1], "STATE": ["01", "02"], "PWGTP": [5, 7],
        "AGEP": [30, 50], "SEX": [1, 2], "RAC1P": [1, 2], "HISP": [1, 1], "SCHL": [16, 21],
        "MAR": [1, 5], "ESR": [1, 6], "OCCP": [440, None], "PINCP": [40_000, 0]})


def test_user_pums_file_is_prepared_and_bad_data_is_named(tmp_path: Path) -> None:
    t = load_census(_write(tmp_path, _good_pums()))
    assert t.df["WEIGHT"].to_list() == [5.0, 7.0] and t.df.height == 2
    with pytest.raises(CensusDataError, match=r"pums.parquet: missing required column\(s\) "
                                              r"\['MAR'\]"):
        load_census(_write(tmp_path, _good_pums().drop("MAR")))
    with pytest.raises(CensusDataError, match=r"column SCHL: unknown code\(s\) \[99\]"):
        load_census(_write(tmp_path, _good_pums().with_columns(pl.lit(99).alias("SCHL"))))
    with pytest.raises(CensusDataError, match=r"column PWGTP: 1 non-positive .* SERIALNO=b"):
        load_census(_write(tmp_path, _good_pums().with_columns(
            pl.Series("PWGTP", [5, 0]))))
    with pytest.raises(CensusDataError, match="column STATE: unknown FIPS"):
        load_census(_write(tmp_path, _good_pums().with_columns(pl.lit("99").alias("STATE"))))
    with pytest.raises(CensusDataError, match="census table not found"):
        load_census(tmp_path / "nope.parquet")


def test_readable_labels_and_money() -> None:
    assert readable_occupation("MED-Registered Nurses") == "Registered nurse"
    assert readable_occupation("OFF-Secretaries And Administrative Assistants, Except Legal, "
                               "Medical, And Executive") == \
        "Secretary and administrative assistant"
    got = pl.DataFrame({"x": [58_000, 1_234_567, -500, 0, 7]}).select(money("x"))
    assert got.to_series().to_list() == ["$58,000", "$1,234,567", "-$500", "$0", "$7"]


def test_personas_carry_raw_acs_columns_labels_and_traits() -> None:
    pop = census_population(CensusSpec(n=40), np.random.default_rng(11))
    people = pop.personas()
    assert len(people) == 40 and len({p.id for p in people}) == 40
    p = people[0]
    a = p.attributes
    for col in ("SERIALNO", "SPORDER", "AGEP", "SEX", "RAC1P", "HISP", "SCHL", "MAR",
                "ESR", "OCCP", "PINCP", "STATE"):
        assert col in a
    assert p.age == a["AGEP"] >= 18
    assert a["sex"] in ("Male", "Female") and p.gender == ("woman" if a["SEX"] == 2 else "man")
    assert set(a["big_five"]) == {"extraversion", "agreeableness", "conscientiousness",
                                  "negative_emotionality", "open_mindedness"}
    assert len(p.goals) == 2 and len(p.hobbies) == 2 and p.description.startswith(p.name)
    assert a["income_usd"] == a["PINCP"]
