"""The auctioneer's rules, rule bidders, data loading and benchmarks, as pure functions."""

from __future__ import annotations

import numpy as np
import pytest

from scenarios.auction.bidders import first_price_bid, rule_action
from scenarios.auction.items import Item, budget_of, draw_values, load_items, parse_items
from scenarios.auction.metrics import lot_benchmark
from scenarios.auction.rules import (
    Action,
    Lot,
    bid_levels,
    check_bid,
    clear_sealed,
    english_round,
    parse_action,
)
from simlab.personas.model import Persona

HOUSE = Item(id="h", name="Test House", description="a house", value=100_000,
             start_price=50_000)


def _lot(**kw) -> Lot:
    return Lot(HOUSE, 0, 10_000, **kw)


# ------------------------------------------------------------------ parsing
def test_parse_action_reads_bids_and_outs_from_json_or_dicts():
    assert parse_action('{"action": "bid", "amount": 412000}') == (Action("bid", 412000), "")
    assert parse_action({"action": "out"}) == (Action("out"), "")
    assert parse_action({"action": "bid", "amount": 5.0})[0] == Action("bid", 5)
    got, _ = parse_action({"action": "bid", "amount": 7, "say": "  mine \n now ", "plan": "p"})
    assert got == Action("bid", 7, say="mine now", plan="p")


@pytest.mark.parametrize(("payload", "error"), [
    ("{not json", "malformed JSON: "),
    ("[1, 2]", "malformed action: expected a JSON object, got list"),
    ({"action": "raise"}, "unknown action 'raise'"),
    ({"amount": 3}, "unknown action None"),
    ({"action": "bid"}, "a bid needs an 'amount'"),
    ({"action": "bid", "amount": "lots"}, "amount must be a whole number of dollars, got 'lots'"),
    ({"action": "bid", "amount": 10.5}, "amount must be a whole number"),
    ({"action": "bid", "amount": True}, "amount must be a whole number"),
    ({"action": "out", "say": 3}, "malformed action: 'say' must be text, got int"),
])
def test_parse_action_says_why_a_reply_is_malformed(payload, error):
    action, why = parse_action(payload)
    assert action is None and why.startswith(error)


# --------------------------------------------------------------- validation
def test_check_bid_over_budget():
    why = check_bid(Action("bid", 80_000), bidder="a", lot=_lot(), budget=70_000, fmt="english")
    assert why == "over budget: $80,000 is more than your remaining budget $70,000"


def test_check_bid_below_start_and_below_minimum_raise():
    why = check_bid(Action("bid", 40_000), bidder="a", lot=_lot(), budget=10**6, fmt="english")
    assert why == "below the minimum: bids for Test House start at $50,000, you bid $40,000"
    lot = _lot(high_bid=60_000, leader="b")
    why = check_bid(Action("bid", 65_000), bidder="a", lot=lot, budget=10**6, fmt="english")
    assert why.startswith("below the minimum raise: the high bid is $60,000")
    assert "bid at least $70,000 (you bid $65,000)" in why
    assert check_bid(Action("bid", 70_000), bidder="a", lot=lot, budget=10**6,
                     fmt="english") == ""


def test_check_bid_after_dropping_out_and_by_the_leader():
    lot = _lot(high_bid=60_000, leader="b", rounds=2, dropped={"a": 1})
    why = check_bid(Action("bid", 90_000), bidder="a", lot=lot, budget=10**6, fmt="english")
    assert why.startswith("bid after dropping out: you left the bidding for Test House in "
                          "round 1")
    assert check_bid(Action("out"), bidder="a", lot=lot, budget=0, fmt="english") == ""
    why = check_bid(Action("bid", 90_000), bidder="b", lot=lot, budget=10**6, fmt="english")
    assert why.startswith("you already hold the high bid of $60,000")


def test_budget_is_checked_before_the_minimum():
    why = check_bid(Action("bid", 30_000), bidder="a", lot=_lot(), budget=20_000,
                    fmt="first_price")
    assert why.startswith("over budget")


# ----------------------------------------------------------------- clearing
def test_english_round_leader_ties_and_closing_reasons():
    lot = _lot()
    english_round(lot, [("a", Action("bid", 50_000)), ("b", Action("bid", 50_000)),
                        ("c", Action("out"))], ["a", "b", "c"], max_rounds=9)
    assert (lot.leader, lot.high_bid, lot.closed, lot.dropped) == ("a", 50_000, "", {"c": 1})
    english_round(lot, [("b", Action("bid", 70_000))], ["a", "b", "c"], max_rounds=9)
    assert (lot.leader, lot.high_bid, lot.min_bid, lot.closed) == ("b", 70_000, 80_000, "")
    english_round(lot, [("a", Action("out"))], ["a", "b", "c"], max_rounds=9)
    assert (lot.leader, lot.high_bid, lot.rounds, lot.closed) == ("b", 70_000, 3,
                                                                  "sold_no_new_bid")


def test_english_round_last_bidder_cap_and_unsold():
    lot = _lot()
    english_round(lot, [("a", Action("bid", 60_000)), ("b", Action("out"))], ["a", "b"], 9)
    assert lot.closed == "sold_last_bidder" and lot.high_bid == 60_000
    lot = _lot()
    english_round(lot, [("a", Action("bid", 50_000)), ("b", Action("bid", 60_000))],
                  ["a", "b"], max_rounds=1)
    assert lot.closed == "sold_max_rounds" and lot.leader == "b"
    lot = _lot()
    english_round(lot, [("a", Action("out")), ("b", Action("out"))], ["a", "b"], 9)
    assert lot.closed == "unsold" and lot.leader is None and not lot.sold


def test_clear_sealed_first_and_second_price():
    bids = [("a", 70_000), ("b", 90_000), ("c", 80_000)]
    lot = _lot()
    clear_sealed(lot, bids, "first_price")
    assert (lot.leader, lot.high_bid, lot.closed) == ("b", 90_000, "sold_sealed")
    lot = _lot()
    clear_sealed(lot, bids, "second_price")
    assert (lot.leader, lot.high_bid) == ("b", 80_000)
    lot = _lot()  # a lone bid pays the reserve (the start price)
    clear_sealed(lot, [("c", 95_000)], "second_price")
    assert (lot.leader, lot.high_bid) == ("c", 50_000)
    lot = _lot()  # a tie goes to the earliest seat and, in second price, pays the tie
    clear_sealed(lot, [("a", 60_000), ("b", 90_000), ("c", 90_000)], "second_price")
    assert (lot.leader, lot.high_bid) == ("b", 90_000)
    lot = _lot()
    clear_sealed(lot, [], "first_price")
    assert lot.closed == "unsold"


def test_bid_levels():
    assert bid_levels(_lot(high_bid=60_000), 100_000, "english", 6) == [
        70_000, 80_000, 90_000, 100_000]
    assert bid_levels(_lot(high_bid=60_000), 65_000, "english", 6) == []
    assert bid_levels(_lot(), 95_000, "first_price", 6) == [
        50_000, 60_000, 70_000, 80_000, 90_000, 95_000]
    many = bid_levels(_lot(), 2_000_000, "second_price", 6, sealed_max=40)
    assert len(many) <= 40 and many[0] == 50_000 and many[-1] == 2_000_000
    assert many == sorted(set(many))


# ------------------------------------------------------------ rule bidders
def _rule(kind, fmt, value, budget=10**6, min_bid=50_000, n=3, rng=None, **kw):
    return rule_action(kind, fmt, value=value, budget=budget, min_bid=min_bid,
                       start_price=50_000, increment=10_000, n_bidders=n,
                       rng=rng or np.random.default_rng(0), **kw)


def test_truthful_bidder():
    assert _rule("truthful", "english", 90_000, min_bid=90_000) == {"action": "bid",
                                                                   "amount": 90_000}
    assert _rule("truthful", "english", 90_000, min_bid=100_000) == {"action": "out"}
    assert _rule("truthful", "second_price", 90_000) == {"action": "bid", "amount": 90_000}
    assert _rule("truthful", "first_price", 90_000, budget=70_000)["amount"] == 70_000
    assert _rule("truthful", "first_price", 40_000) == {"action": "out"}


def test_first_price_equilibrium_bid_and_shading_bidder():
    assert first_price_bid(90_000, 3) == pytest.approx(60_000)  # (n-1)/n v without reserve
    # with reserve r: v - (v^n - r^n) / (n v^(n-1))
    v, r, n = 150_000, 50_000, 3
    assert first_price_bid(v, n, r) == pytest.approx(v - (v**n - r**n) / (n * v ** (n - 1)))
    assert first_price_bid(150_000, 1, 50_000) == 50_000
    assert _rule("shading", "first_price", 150_000) == {"action": "bid", "amount": 101_852}
    assert _rule("shading", "first_price", 150_000, shade=0.5)["amount"] == 75_000
    assert _rule("shading", "english", 150_000, min_bid=110_000) == {"action": "out"}
    assert _rule("shading", "english", 150_000, min_bid=100_000)["amount"] == 100_000


def test_random_bidder_is_seeded_and_stays_in_range():
    draws = [_rule("random", "first_price", 100_000, budget=120_000,
                   rng=np.random.default_rng(s)) for s in range(40)]
    again = [_rule("random", "first_price", 100_000, budget=120_000,
                   rng=np.random.default_rng(s)) for s in range(40)]
    assert draws == again
    bids = [d["amount"] for d in draws if d["action"] == "bid"]
    assert bids and all(50_000 <= b <= 120_000 for b in bids)
    assert 0 < sum(d["action"] == "out" for d in draws) < 40
    eng = [_rule("random", "english", 100_000, rng=np.random.default_rng(s), out_p=0.0)
           for s in range(20)]
    assert all(50_000 <= d["amount"] <= 90_000 for d in eng)
    with pytest.raises(ValueError, match="unknown bidder type 'greedy'"):
        _rule("greedy", "english", 1)


# --------------------------------------------------------------- benchmarks
def test_lot_benchmark_uses_budget_capped_estimates():
    snap = {"a": {"estimate": 150_000, "true": 160_000, "budget": 300_000},
            "b": {"estimate": 140_000, "true": 120_000, "budget": 110_000},
            "c": {"estimate": 90_000, "true": 90_000, "budget": 500_000}}
    sp = lot_benchmark("second_price", snap, ["a", "b", "c"], 50_000)
    assert sp == {"v1": 150_000, "v2": 110_000, "bench_winner": "a", "bench_price": 110_000,
                  "bench_revenue": 110_000, "bench_profit": 50_000}
    fp = lot_benchmark("first_price", snap, ["a", "b", "c"], 50_000)
    assert fp["bench_price"] == 101_852 and fp["bench_profit"] == 160_000 - 101_852
    none = lot_benchmark("english", snap, ["a", "b", "c"], 200_000)
    assert none["bench_winner"] is None and none["bench_revenue"] == 0


# --------------------------------------------------------------------- data
def test_bundled_houses_load():
    items = load_items()
    assert len(items) >= 6 and all(i.start_price < i.value for i in items)


def test_item_errors_name_the_record_and_field(tmp_path):
    with pytest.raises(ValueError) as err:
        parse_items([{"id": "x", "name": "X", "description": "d", "value": -1,
                      "start_price": 5}, {"id": "y", "name": "Y"}], "houses.yaml")
    text = str(err.value)
    assert "houses.yaml: item 0 (x): field 'value'" in text
    assert "houses.yaml: item 1 (y): field 'description'" in text
    with pytest.raises(FileNotFoundError, match=r"scenario.items_path: no such file"):
        load_items(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("items: [1, 2")
    with pytest.raises(ValueError, match=r"bad.yaml: not valid YAML"):
        load_items(bad)


def _person(**attributes) -> Persona:
    return Persona(id="p", name="Pat Doe", age=40, description="Pat.", attributes=attributes)


def test_budget_from_persona_or_census_income():
    assert budget_of(_person(budget_usd=450_000, income_usd=10), 5.0) == 450_000
    # census persona: budget = income_usd x multiple (mortgage ~4x + savings ~1x)
    census = _person(income_usd=58_000, AGEP=41, PINCP=58_000, income="$58,000")
    assert budget_of(census, 5.0) == 290_000
    assert budget_of(census, 3.5) == 203_000
    assert budget_of(_person(income_usd=-2_000), 5.0) == 0
    with pytest.raises(ValueError, match=r"persona 'p': an auction bidder needs "
                                         r"attributes.budget_usd or attributes.income_usd"):
        budget_of(_person(), 5.0)
    with pytest.raises(ValueError, match="budget_usd must be a number >= 0"):
        budget_of(_person(budget_usd="lots"), 5.0)


def test_values_follow_preferences_taste_and_noise():
    houses = [HOUSE, Item(id="g", name="G", description="d", value=200_000,
                          start_price=100_000, features=("garden",))]
    people = [_person(preferences={"garden": 1.5}), _person()]
    true, est = draw_values(houses, people, np.random.default_rng(0), taste_sd=0.0,
                            value_noise=0.0)
    assert true.tolist() == [[100_000, 300_000], [100_000, 200_000]]
    assert est.tolist() == true.tolist()
    true2, est2 = draw_values(houses, people, np.random.default_rng(0), taste_sd=0.1,
                              value_noise=0.2)
    again = draw_values(houses, people, np.random.default_rng(0), taste_sd=0.1,
                        value_noise=0.2)
    assert (true2 == again[0]).all() and (est2 == again[1]).all()
    assert (est2 % 1000 == 0).all() and (true2 != true).any()
    with pytest.raises(ValueError, match=r"preferences.garden must be a positive number"):
        draw_values(houses, [_person(preferences={"garden": 0})], np.random.default_rng(0),
                    taste_sd=0, value_noise=0)
