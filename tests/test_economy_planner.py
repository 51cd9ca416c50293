"""Planner arithmetic (Saez formula, clipped rate changes) and vote counting."""

from __future__ import annotations

import numpy as np
import pytest

from scenarios.economy.planner import elect, plan_schema, read_plan, rule_plan, saez_rates
from scenarios.economy.tax import TaxSchedule, preset_schedule, settle
from scenarios.economy.tax import UtilityParams as P
from simlab.backends.schema import validate


def test_llm_plan_changes_are_clipped_per_change_and_to_0_100():
    s = TaxSchedule((0, 10_000, 50_000), (5, 50, 95))
    new = read_plan({"changes": [-10, 30, 10]}, s, max_change=10)
    # -10 takes 5% to 0 (clipped), +30 is cut to +10, +10 takes 95% to 100 (clipped)
    assert new.rates == (0.0, 60.0, 100.0)
    wide = read_plan({"changes": [-50, 0, 50]}, s, max_change=50)
    assert wide.rates == (0.0, 50.0, 100.0)


@pytest.mark.parametrize(("reply", "message"), [
    ({"changes": [1, 2]}, "must list 3 numbers"),
    ({"changes": [1, "x", 2]}, "must be numbers"),
    ({"changes": [True, 0, 0]}, "must be numbers"),
    (["changes"], "expected a JSON object"),
    ({"rates": [10, 20]}, "bad rates"),
])
def test_bad_plans_are_reported_not_applied(reply, message):
    s = TaxSchedule((0, 10_000, 50_000), (5, 50, 95))
    out = read_plan(reply, s, max_change=10)
    assert isinstance(out, str) and message in out


def test_plan_schema_bounds_each_change():
    schema = plan_schema(2, 10)
    assert validate({"changes": [10, -10]}, schema) == []
    assert validate({"changes": [11, 0]}, schema)
    assert validate({"changes": [0]}, schema)


def test_saez_rates_by_hand():
    s = TaxSchedule((0, 50_000), (10, 30))
    pretax = [20_000, 60_000, 100_000]
    consumption = [20_000, 50_000, 80_000]
    rates = saez_rates(s, pretax, consumption, eta=1.0, elasticity=0.5, min_count=2)
    # welfare weights 1/c normalised to mean 1
    g = np.array([1 / 20_000, 1 / 50_000, 1 / 80_000])
    g = g / g.mean()
    gbar = (g[1] + g[2]) / 2          # both brackets: the two incomes >= 25k / >= 50k
    m = (60_000 + 100_000) / 2
    a0, a1 = m / (m - 25_000), m / (m - 50_000)  # bottom bracket at its midpoint 25k
    tau0 = (1 - gbar) / (1 - gbar + a0 * 0.5)
    tau1 = (1 - gbar) / (1 - gbar + a1 * 0.5)
    assert rates == [round(tau0 * 100, 2), round(tau1 * 100, 2)]
    assert rates == [36.0, 23.48]


def test_saez_sparse_brackets_inherit_the_rate_below():
    s = TaxSchedule((0, 50_000, 90_000), (10, 30, 40))
    rates = saez_rates(s, [20_000, 60_000, 100_000], [20_000, 50_000, 80_000], eta=1.0,
                       elasticity=0.5, min_count=2)
    assert rates == [36.0, 23.48, 23.48]  # only one income above 90k: keeps the rate below


def test_saez_flat_schedule_uses_the_median():
    s = preset_schedule("flat")
    rates = saez_rates(s, [10_000, 30_000, 50_000], [10_000, 30_000, 50_000], eta=0.0,
                       elasticity=0.25, min_count=2)
    # eta 0: every welfare weight is 1, so G = 1 and the formula gives 0
    assert rates == [0.0]


def test_rule_planners():
    flat = preset_schedule("flat", flat_rate=12)
    us = rule_plan("us_federal", flat, [], eta=0.5, elasticity=0.25, min_count=2)
    assert us["rates"] == [10, 12, 22, 24, 32, 35, 37] and us["thresholds"][1] == 11_600
    assert rule_plan("fixed", flat, [], eta=0.5, elasticity=0.25, min_count=2) == {"rates": [12]}
    year = [settle([10.0, 20.0, 40.0], [40, 40, 40], flat, P(), 52)]
    saez = rule_plan("saez", flat, year, eta=0.5, elasticity=0.25, min_count=2)
    assert saez["rates"] == saez_rates(flat, year[0].pretax, year[0].consumption, eta=0.5,
                                       elasticity=0.25, min_count=2)


CANDIDATES = ["LLM planner", "Saez planner", "US federal planner"]


def test_plurality_counts_votes_and_ignores_abstentions():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    votes = ["Saez planner", "LLM planner", "Saez planner", None, "nobody"]
    winner, counts, tie = elect(votes, CANDIDATES, rng, incumbent="LLM planner")
    assert (winner, tie) == ("Saez planner", False)
    assert counts == {"LLM planner": 1, "Saez planner": 2, "US federal planner": 0}
    assert rng.bit_generator.state == before  # no tie: no draw


def test_ties_are_broken_by_the_rng():
    votes = ["LLM planner", "US federal planner"] * 2 + ["Saez planner"]
    winners = set()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        expected = ["LLM planner", "US federal planner"][int(
            np.random.default_rng(seed).integers(2))]
        winner, _, tie = elect(votes, CANDIDATES, rng, incumbent="Saez planner")
        assert tie and winner == expected
        winners.add(winner)
    assert winners == {"LLM planner", "US federal planner"}  # never the third


def test_nobody_voting_keeps_the_incumbent():
    rng = np.random.default_rng(0)
    assert elect([None, None], CANDIDATES, rng, "US federal planner") == (
        "US federal planner", dict.fromkeys(CANDIDATES, 0), False)
