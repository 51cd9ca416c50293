"""Tax, rebate, utility, Gini and welfare arithmetic against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scenarios.economy.tax import (
    TaxSchedule,
    UtilityParams,
    best_response,
    gini,
    preset_schedule,
    settle,
    welfare,
)

US = preset_schedule("us_federal")


@pytest.mark.parametrize(("income", "tax"), [
    (0, 0.0),
    (-5_000, 0.0),                      # losses owe nothing
    (11_600, 1_160.0),                  # 10% of the first bracket
    (50_000, 1_160 + 0.12 * 35_550 + 0.22 * 2_850),  # = 6,053
    (1_000_000, 1_160 + 0.12 * 35_550 + 0.22 * 53_375 + 0.24 * 91_425 + 0.32 * 51_775
     + 0.35 * 365_625 + 0.37 * 390_650),           # = 328,187.75
])
def test_us_federal_tax(income, tax):
    assert US.tax([income])[0] == pytest.approx(tax, abs=1e-6)


def test_flat_and_three_bracket_schedules():
    assert preset_schedule("flat", flat_rate=15).tax([40_000])[0] == pytest.approx(6_000)
    three = preset_schedule("three_bracket")
    # 10% of 50k + 25% of 100k + 40% of 50k
    assert three.tax([200_000])[0] == pytest.approx(5_000 + 25_000 + 20_000)
    custom = preset_schedule("custom", brackets=[0, 10_000], rates=[0, 50])
    assert custom.tax([30_000])[0] == pytest.approx(10_000)


def test_marginal_bracket_at_thresholds():
    assert list(US.bracket_of([0, 11_599, 11_600, 700_000])) == [0, 0, 1, 6]
    assert list(US.marginal_rate([11_600, 47_150])) == [12, 22]


def test_describe_reads_like_a_tax_table():
    assert preset_schedule("three_bracket").lines() == [
        "10% on the first $50,000",
        "25% on $50,000-$150,000",
        "40% above $150,000",
    ]
    assert preset_schedule("flat").describe() == "20% on all income"


def test_rate_updates_are_clipped_to_0_100():
    s = TaxSchedule((0, 10_000), (5, 95))
    assert s.adjusted([-10, 10]).rates == (0.0, 100.0)
    assert s.adjusted([-3, -30]).rates == (2.0, 65.0)
    assert s.with_rates([-1, 250]).rates == (0.0, 100.0)
    with pytest.raises(ValueError, match="expected 2 rate changes"):
        s.adjusted([1])


@pytest.mark.parametrize(("thresholds", "rates", "message"), [
    ((1_000, 5_000), (10, 20), "must start at 0"),
    ((0, 5_000, 5_000), (10, 20, 30), "increase strictly"),
    ((0, 5_000), (10, 120), r"in \[0, 100\]"),
    ((0, 5_000), (10,), "one rate per bracket"),
])
def test_bad_schedules_are_rejected_with_the_key_named(thresholds, rates, message):
    with pytest.raises(ValueError, match=message):
        TaxSchedule(thresholds, rates)


def test_unknown_preset_and_custom_without_brackets():
    with pytest.raises(ValueError, match=r"scenario\.tax_schedule"):
        preset_schedule("progressive")
    with pytest.raises(ValueError, match=r"scenario\.brackets"):
        preset_schedule("custom")


def _u(c: float, h: float, eta=0.5, psi=0.0036, frisch=0.5) -> float:
    """The utility written out by hand (not through the module)."""
    cons = math.log(c) if eta == 1 else (c ** (1 - eta) - 1) / (1 - eta)
    power = 1 + 1 / frisch
    return cons - psi * h ** power / power


def test_settle_taxes_rebates_equally_and_scores_utility():
    flat = preset_schedule("flat", flat_rate=20)
    s = settle([10.0, 20.0, 50.0], [40, 20, 0], flat, UtilityParams(), weeks_per_year=50)
    # pre-tax: 40*10*50, 20*20*50, 0; tax 20%; revenue 8,000 shared by 3
    assert list(s.pretax) == [20_000, 20_000, 0]
    assert list(s.tax) == pytest.approx([4_000, 4_000, 0])
    assert s.revenue == pytest.approx(8_000)
    assert s.rebate == pytest.approx(8_000 / 3)
    assert list(s.consumption) == pytest.approx([16_000 + 8_000 / 3] * 2 + [8_000 / 3])
    assert list(s.utility) == pytest.approx([_u(16_000 + 8_000 / 3, 40),
                                             _u(16_000 + 8_000 / 3, 20), _u(8_000 / 3, 0)])


def test_log_utility_and_the_consumption_floor():
    p = UtilityParams(eta=1.0, psi=0.01, frisch=1.0, min_consumption=1.0)
    s = settle([0.0, 30.0], [0, 10], preset_schedule("flat", flat_rate=0), p, 52)
    # worker 0 consumes nothing: floored to 1 USD, log(1) = 0, no labour
    assert s.utility[0] == 0.0
    assert s.utility[1] == pytest.approx(math.log(30 * 10 * 52) - 0.01 * 10 ** 2 / 2)


def test_utility_params_are_validated():
    with pytest.raises(ValueError, match=r"scenario\.frisch"):
        UtilityParams(frisch=0)
    with pytest.raises(ValueError, match=r"scenario\.psi"):
        UtilityParams(psi=-1)


def test_best_response_maximises_utility_on_the_grid():
    untaxed = preset_schedule("flat", flat_rate=0)
    # psi is calibrated so a $25/h worker, untaxed and without rebate, works 40 h/week
    us = {h: _u(h * 25 * 52, h) for h in range(0, 101, 10)}
    assert max(us, key=us.get) == 40
    assert best_response(25.0, untaxed, 0.0, UtilityParams(), 52) == 40
    # a 100% tax leaves only the rebate: any work is pure disutility
    confiscatory = preset_schedule("flat", flat_rate=100)
    assert best_response(25.0, confiscatory, 10_000.0, UtilityParams(), 52) == 0


def test_gini_by_hand():
    assert gini([1, 1, 1, 1]) == 0.0
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)
    # mean |xi - xj| over ordered pairs = 8/9, / (2 * mean 2)
    assert gini([3, 1, 2]) == pytest.approx((8 / 9) / 4)
    assert math.isnan(gini([0, 0]))


def test_welfare_utilitarian_and_inverse_income_weighted():
    util, inv = welfare([10.0, 20.0], [10_000.0, 40_000.0], income_floor=1_000)
    assert util == 15.0
    assert inv == pytest.approx(0.8 * 10 + 0.2 * 20)  # weights 1/10k : 1/40k = 4 : 1
    _, floored = welfare([10.0, 20.0], [0.0, 40_000.0], income_floor=1_000)
    assert floored == pytest.approx((40 * 10 + 1 * 20) / 41)  # 1/1k : 1/40k = 40 : 1


def test_tax_is_vectorised_over_any_shape():
    z = np.array([[0, 11_600], [50_000, 1_000_000]])
    assert US.tax(z).shape == (2, 2)
