"""Hand-worked auctions with rule bidders, and every validation path through the engine.

The three bidders value the two houses (no noise, no taste draws) at

    house  start    Ana (300k budget)  Ben (130k)  Chloe (500k)
    h1     50,000   150,000            120,000     90,000
    h2     100,000  180,000            200,000     220,000

and the expected outcomes below are worked out by hand in the comments.
"""

from __future__ import annotations

import json

import pytest

from scenarios.auction import AuctionConfig, AuctionScenario
from scenarios.auction.rules import AuctionSchedule
from simlab.backends.base import ChatResponse
from simlab.backends.mock import MockBackend
from simlab.events import FAILURE, NARRATION, NOTE, UTTERANCE
from simlab.personas import default_persona_path, load_personas
from simlab.personas.model import Persona
from simlab.scheduler.engine import TickEngine
from simlab.scheduler.graph import run_episode
from simlab.scheduler.policies import make_policy
from simlab.scheduler.settings import EngineConfig, ScheduleConfig

HOUSES = [
    {"id": "h1", "name": "Garden House", "description": "a house with a garden",
     "value": 100_000, "start_price": 50_000, "features": ["garden"]},
    {"id": "h2", "name": "View Flat", "description": "a flat with a view",
     "value": 200_000, "start_price": 100_000, "features": ["view"]},
]


def _bidder(pid: str, name: str, budget: int, garden: float, view: float) -> Persona:
    return Persona(id=pid, name=name, age=40, description=f"{name} buys houses.",
                   attributes={"budget_usd": budget,
                               "preferences": {"garden": garden, "view": view}})


PEOPLE = [_bidder("a", "Ana Diaz", 300_000, 1.5, 0.9),
          _bidder("b", "Ben Okafor", 130_000, 1.2, 1.0),
          _bidder("c", "Chloe Martin", 500_000, 0.9, 1.1)]


def _auction(fmt: str = "english", rules=("truthful",) * 3, people=PEOPLE, **kw):
    opts = {"items": HOUSES, "n_items": 2, "n_bidders": len(people), "shuffle": False,
            "taste_sd": 0.0, "value_noise": 0.0, "max_rounds": 20, "talk": False, **kw}
    config = AuctionConfig(format=fmt, rule_bidders=list(rules), **opts)
    return AuctionScenario.create(config, people, episode_id="e", seed=0)


def _play(sc: AuctionScenario, backend=None, **engine) -> AuctionScenario:
    settings = EngineConfig(**{"max_steps": 100, **engine})
    run_episode(TickEngine(sc, backend or MockBackend(), settings=settings))
    return sc


def _lots(sc):
    return [(r["winner"], r["price"], r["rounds"], r["closed"], r["efficient"])
            for r in sc.lot_rows]


def _kinds(sc, kind):
    return [e for e in sc.log if e.kind == kind]


# ----------------------------------------------------------- hand-worked
def test_english_with_truthful_bidders():
    sc = _play(_auction("english"))
    # Lot 1: everyone bids 50k (Ana leads on the earliest seat); the two others raise in
    # 10k steps, ties going to the earlier seat; Chloe leaves at 100k (value 90k), Ben at
    # 140k (value 120k): Ana wins at 130k = v(2) + one increment, after 10 rounds.
    # Lot 2 (Ana's budget is now 170k): Ben leaves at 150k (budget 130k), Ana at 180k
    # (budget 170k): Chloe wins at 170k = v(2) (budget-capped), after 9 rounds.
    assert _lots(sc) == [("a", 130_000, 10, "sold_no_new_bid", True),
                         ("c", 170_000, 9, "sold_no_new_bid", True)]
    assert sc.termination_reason == "auction_complete" and sc.steps_taken == 19
    assert [sc.by_key[k].state["remaining"] for k in "abc"] == [170_000, 130_000, 330_000]
    out = sc.outcome()
    assert out["revenue"] == 300_000 and out["revenue_benchmark"] == 120_000 + 170_000
    assert out["welfare_share"] == 1.0 and out["efficient_items"] == 1.0
    assert out["profit_per_bidder"] == pytest.approx((20_000 + 50_000) / 3)
    assert out["profit_per_bidder_benchmark"] == pytest.approx((30_000 + 50_000) / 3)
    assert out["rounds_per_item"] == 9.5 and out["rounds_per_item_benchmark"] is None
    assert out["invalid_action_rate"] == 0.0 and out["overbid_value_rate"] == 0.0
    assert out["n_sold"] == 2 and out["n_llm_bidders"] == 0
    # every bid, drop-out and sale is in the log, bids seen by the whole room
    bids, outs, sales = _kinds(sc, "bid"), _kinds(sc, "out"), _kinds(sc, "sale")
    assert (len(bids), len(outs), len(sales)) == (15 + 14, 4, 2)
    assert bids[0].content == "I bid $50,000." and set(bids[0].audience) == {"b", "c"}
    assert json.loads(bids[0].data) == {"action": "bid", "amount": 50_000}
    assert bids[0].model == "rule:truthful" and bids[0].backend == "rule"
    assert [e.content for e in sales] == ["Sold! Garden House goes to Ana Diaz for $130,000.",
                                          "Sold! View Flat goes to Chloe Martin for $170,000."]
    assert json.loads(sales[1].data) == {"item": "h2", "winner": "c", "price": 170_000,
                                         "closed": "sold_no_new_bid"}


def test_first_price_with_equilibrium_shading_bidders():
    sc = _play(_auction("first_price", rules=("shading",) * 3))
    # b(v) = v - (v^3 - r^3)/(3 v^2). Lot 1 (r = 50k): Ana 101,852, Ben 82,894, Chloe
    # 65,144 -> Ana pays 101,852. Lot 2 (r = 100k): Ana 130,288, Ben min(141,667, budget
    # 130k) = 130,000, Chloe 153,554 -> Chloe pays 153,554. Both equal the benchmark.
    assert _lots(sc) == [("a", 101_852, 1, "sold_sealed", True),
                         ("c", 153_554, 1, "sold_sealed", True)]
    assert [json.loads(e.data)["amount"] for e in _kinds(sc, "bid")] == [
        101_852, 82_894, 65_144, 130_288, 130_000, 153_554]
    out = sc.outcome()
    assert out["revenue"] == out["revenue_benchmark"] == 101_852 + 153_554
    assert out["efficient_items"] == 1.0 and out["rounds_per_item"] == 1.0
    # sealed bids are seen by their bidder only; the result is announced to all
    assert all(e.audience == () for e in _kinds(sc, "bid"))
    assert _kinds(sc, "sale")[0].audience == ("a", "b", "c")


def test_second_price_with_truthful_bidders():
    sc = _play(_auction("second_price"))
    # Lot 1: bids 150k / 120k / 90k -> Ana pays the second bid, 120k (budget left 180k).
    # Lot 2: bids min(v, budget) = 180k / 130k / 220k -> Chloe pays 180k.
    assert _lots(sc) == [("a", 120_000, 1, "sold_sealed", True),
                         ("c", 180_000, 1, "sold_sealed", True)]
    out = sc.outcome()
    assert out["revenue"] == out["revenue_benchmark"] == 300_000
    assert out["profit_per_bidder"] == pytest.approx((30_000 + 40_000) / 3)


def test_inefficient_sale_and_unsold_lot_are_measured():
    # Chloe (value 90k) outbids Ana by truthfully bidding her whole budget when Ana's
    # budget is only 60k: the lot goes to a lower true value; nobody can afford lot 2.
    people = [_bidder("a", "Ana Diaz", 60_000, 1.5, 0.9),
              _bidder("c", "Chloe Martin", 95_000, 0.9, 0.1)]
    sc = _play(_auction("first_price", rules=("truthful",) * 2, people=people))
    assert _lots(sc) == [("c", 90_000, 1, "sold_sealed", False),
                         (None, None, 1, "unsold", False)]
    out = sc.outcome()
    assert out["welfare_share"] == pytest.approx(90_000 / (150_000 + 180_000))
    assert out["efficient_items"] == 0.0 and out["revenue"] == 90_000
    assert [e.content for e in _kinds(sc, "unsold")] == [
        "No bids: View Flat is withdrawn unsold."]


# ------------------------------------------------------------ validation
def _llm_auction(replies, rules=("truthful",), people=PEOPLE[:2], **kw):
    """Ana answers by rule; the remaining bidders are the (mock) model's, in order."""
    backend = MockBackend(replies=replies)
    opts = {"n_items": 1, "bid_schema": "open", **kw}
    sc = _auction("english", rules=rules, people=people, **opts)
    return _play(sc, backend, max_reasks=1), backend


def _rows(sc, bidder):
    return [r for r in sc.bid_rows if r["bidder"] == bidder]


def test_over_budget_is_reasked_with_the_reason():
    sc, backend = _llm_auction(['{"action": "bid", "amount": 999999}',
                                '{"action": "bid", "amount": 60000}', '{"action": "out"}'])
    note = backend.calls[1].messages[-1]
    assert note.role == "user" and ("[Auctioneer] Your last reply was rejected: over budget: "
                                    "$999,999 is more than your remaining budget $130,000"
                                    ) in note.content
    first = next(e for e in sc.log if e.speaker == "b" and e.kind == "bid")
    assert first.content == "I bid $60,000." and first.attempts == 2
    rows = _rows(sc, "b")
    assert [(r["valid"], r["error_kind"], r["over_budget"], r["final"]) for r in rows[:2]] == [
        (False, "rule", True, False), (True, "", False, True)]
    # round 2: Ana raises to 70k, round 3: Ben drops out -> Ana wins at 70k
    assert _lots(sc) == [("a", 70_000, 3, "sold_no_new_bid", True)]


def test_illegal_action_when_reasks_run_out_is_a_failure_counted_as_out():
    sc, _ = _llm_auction(['{"action": "bid", "amount": 999999}'] * 2)
    (fail,) = _kinds(sc, FAILURE)
    assert fail.speaker == "b" and fail.attempts == 2
    assert fail.content == ("over budget: $999,999 is more than your remaining budget "
                            "$130,000 (counted as out)")
    news = [e.content for e in sc.log if e.kind == NARRATION and e.step == 0 and e.seq > 3]
    assert any("Out: Ben Okafor (invalid action)." in t for t in news)
    assert _lots(sc) == [("a", 50_000, 1, "sold_last_bidder", True)]
    out = sc.outcome()
    assert out["invalid_action_rate"] == pytest.approx(2 / 3)
    assert out["overbid_budget_rate"] == pytest.approx(2 / 3)


def test_below_the_start_price_and_below_the_minimum_raise():
    sc, backend = _llm_auction(['{"action": "bid", "amount": 40000}',
                                '{"action": "bid", "amount": 50000}',
                                '{"action": "bid", "amount": 55000}',
                                '{"action": "bid", "amount": 60000}', '{"action": "out"}'])
    assert ("below the minimum: bids for Garden House start at $50,000, you bid $40,000"
            in backend.calls[1].messages[-1].content)
    # round 1: both bid 50k and Ana leads (earlier seat); round 2: Ben's 55k is too low
    assert ("below the minimum raise: the high bid is $50,000 and a raise must be at least "
            "$10,000, so bid at least $60,000 (you bid $55,000)"
            in backend.calls[3].messages[-1].content)
    assert _lots(sc) == [("a", 70_000, 4, "sold_no_new_bid", True)]
    assert [r["error"][:22] for r in _rows(sc, "b") if not r["valid"]] == [
        "below the minimum: bid", "below the minimum rais"]


def test_bid_after_dropping_out():
    replies = ['{"action": "out"}', '{"action": "bid", "amount": 70000}'] + [
        '{"action": "out"}'] * 9
    sc, backend = _llm_auction(replies, rules=("truthful", "truthful"), people=PEOPLE,
                               ask_dropped=True)
    assert ("bid after dropping out: you left the bidding for Garden House in round 1 and "
            "cannot come back in; reply out") in backend.calls[2].messages[-1].content
    assert [r["error_kind"] for r in _rows(sc, "c")].count("rule") == 1
    assert _kinds(sc, FAILURE) == []
    assert _lots(sc) == [("a", 130_000, 10, "sold_no_new_bid", True)]


def test_malformed_json_is_reasked_then_recorded():
    sc, backend = _llm_auction(["not json", '{"action": "bid", "amount": 60000}',
                                '{"action": "out"}'])
    assert "invalid structured reply: invalid JSON" in backend.calls[1].messages[-1].content
    assert [(r["error_kind"], r["amount"]) for r in _rows(sc, "b")][:2] == [
        ("schema", None), ("", 60_000)]

    sc, _ = _llm_auction(["not json", '{"action": oops'])
    (fail,) = _kinds(sc, FAILURE)
    assert fail.content.startswith("invalid structured reply: invalid JSON")
    assert fail.content.endswith("(counted as out)")
    assert sc.outcome()["invalid_action_rate"] == pytest.approx(2 / 3)

    # a reply that skipped the backend's JSON parsing is read by the scenario itself
    sc = _auction("english", n_items=1)
    bad = sc.interpret(sc.by_key["b"], ChatResponse(text="{oops"))
    assert not bad.ok and bad.error.startswith("malformed JSON")


# -------------------------------------------------------- views and notes
def test_private_notes_are_seen_by_their_owner_only():
    sc = _auction("second_price", rules=("truthful",), people=PEOPLE[:2], plan=True,
                  profiling=True, n_items=1)
    backend = MockBackend(replies=['{"action": "bid", "amount": 70000, "plan": "win cheap", '
                                   '"rivals": "Ana looks rich"}'])
    engine = TickEngine(sc, backend, settings=EngineConfig(max_steps=100))
    run_episode(engine)
    notes = _kinds(sc, NOTE)
    assert [(e.speaker, e.audience, e.content) for e in notes] == [
        ("b", (), "My plan: win cheap"), ("b", (), "My read on my rivals: Ana looks rich")]
    ben = "\n".join(m.content for m in engine.projector.view("b", sc.log))
    ana = "\n".join(m.content for m in engine.projector.view("a", sc.log))
    assert "(Your private note) My plan: win cheap" in ben and "win cheap" not in ana
    assert "Private note for Ben Okafor: you estimate Garden House is worth $120,000" in ben
    assert "Private note for Ben Okafor" not in ana and "Private note for Ana Diaz" in ana
    assert "I bid $70,000." not in ana  # sealed
    schema = backend.calls[0].json_schema
    assert schema["required"] == ["action", "amount", "plan", "rivals"]


def test_remarks_are_utterances_to_the_room():
    sc = _auction("english", rules=(), people=PEOPLE[:2], n_items=1, talk=True,
                  bid_schema="open")
    _play(sc, MockBackend(replies=['{"action": "bid", "amount": 50000, "say": "Lovely!"}',
                                   '{"action": "out", "say": "Too rich for me."}']))
    said = _kinds(sc, UTTERANCE)
    assert [(e.speaker, e.audience, e.content) for e in said] == [
        ("a", ("b",), "Lovely!"), ("b", ("a",), "Too rich for me.")]
    assert sc.by_key["a"].turns == 1  # the remark does not count as a second turn


def test_ladder_schema_offers_legal_amounts_only():
    sc = _auction("english", rules=(), people=PEOPLE[:2], n_items=1)
    schema = sc.action_schema(sc.by_key["b"])
    assert schema["properties"]["amount"]["enum"] == [50_000 + 10_000 * k for k in range(6)]
    sc.by_key["b"].state["remaining"] = 40_000
    assert sc.action_schema(sc.by_key["b"])["properties"]["action"]["enum"] == ["out"]
    # a house may set its own increment; the open schema takes any whole amount
    own = [{**HOUSES[0], "increment": 5_000}]
    sc = _auction("english", rules=(), people=PEOPLE[:2], n_items=1, items=own,
                  ladder_size=3)
    assert sc.action_schema(sc.by_key["a"])["properties"]["amount"]["enum"] == [
        50_000, 55_000, 60_000]
    sc = _auction("english", rules=(), people=PEOPLE[:2], n_items=1, bid_schema="open")
    schema = sc.action_schema(sc.by_key["a"])
    assert schema["properties"]["amount"] == {"type": "integer", "minimum": 0}
    assert schema["required"] == ["action"]


# --------------------------------------------------------- setup and errors
def test_census_style_personas_get_budgets_from_income():
    people = [Persona(id=f"p{i}", name=n, age=40, description=f"{n}.",
                      attributes={"income_usd": inc, "PINCP": inc, "AGEP": 40})
              for i, (n, inc) in enumerate([("Ana Diaz", 58_000), ("Ben Okafor", 0)])]
    sc = _auction("english", rules=("truthful",) * 2, people=people, n_items=1)
    assert [sc.by_key[k].state["budget"] for k in ("p0", "p1")] == [290_000, 0]
    briefs = [e.content for e in sc.log if e.audience == ("p0",)]
    assert briefs == ["Private note for Ana Diaz: you estimate Garden House is worth "
                      "$100,000 to you. Your remaining budget is $290,000."]


def test_constructor_errors_name_the_key():
    with pytest.raises(ValueError, match=r"scenario.format: expected one of"):
        AuctionConfig(format="dutch")
    with pytest.raises(ValueError, match=r"scenario.rule_bidders: 4 rule bidders but only "
                                         r"n_bidders=3"):
        AuctionConfig(n_bidders=3, rule_bidders=["truthful"] * 4)
    with pytest.raises(ValueError, match=r"scenario.rule_bidders: unknown type\(s\) \['greedy'\]"):
        AuctionConfig(rule_bidders=["greedy"])
    with pytest.raises(ValueError, match=r"scenario.n_items: 3 lots but only 2 items"):
        AuctionScenario(AuctionConfig(items=HOUSES, n_items=3), episode_id="e")
    with pytest.raises(ValueError, match="population: the auction needs n_bidders=4"):
        _auction(n_bidders=4)
    with pytest.raises(ValueError, match=r"persona 'maya': an auction bidder needs "
                                         r"attributes.budget_usd"):
        _auction(rules=(), people=load_personas(default_persona_path()), n_bidders=4,
                 shuffle=False)
    with pytest.raises(ValueError, match=r"scenario.max_rounds: must be >= 1"):
        AuctionConfig(max_rounds=0)


def test_the_auctioneer_schedules_whatever_schedule_is_configured():
    # the auctioneer decides who bids: a configured schedule (engine.schedule, or a policy
    # object given to the engine) does not apply to an auction
    sc = _auction("english")
    assert isinstance(TickEngine(sc, MockBackend(), schedule=make_policy("random")).policy,
                      AuctionSchedule)
    settings = EngineConfig(max_steps=100, schedule=ScheduleConfig(name="random"))
    assert isinstance(TickEngine(sc, MockBackend(), settings=settings).policy, AuctionSchedule)
    # and the auction runs as the hand-worked one (test_english_with_truthful_bidders)
    run_episode(TickEngine(sc, MockBackend(), settings=settings,
                           schedule=make_policy("simultaneous")))
    assert _lots(sc) == [("a", 130_000, 10, "sold_no_new_bid", True),
                         ("c", 170_000, 9, "sold_no_new_bid", True)]


def test_same_seed_same_auction_with_random_bidders():
    def run(seed):
        config = AuctionConfig(rule_bidders=["random"] * 3, format="english")
        sc = AuctionScenario.create(config, load_personas("personas/bidders.yaml"),
                                    episode_id="e", seed=seed)
        return [(e.speaker, e.kind, e.content) for e in _play(sc).log]

    assert run(3) == run(3)
    assert run(3) != run(4)
