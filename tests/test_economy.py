"""The economy scenario end to end on the mock backend and rule agents: skills, phases,
one batch per period, exact per-period metrics, failures, voting, planners, archetypes,
the store and the sweep comparison."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import numpy as np
import pytest
from conftest import compose

from scenarios.economy import EconomyConfig, EconomyScenario
from scenarios.economy.compare import economy_comparison
from scenarios.economy.workers import SkillRule, worker_skill
from simlab.analysis import analyze
from simlab.analysis.runs import summarize_runs
from simlab.backends.mock import MockBackend
from simlab.events import FAILURE
from simlab.personas.model import Persona
from simlab.runner import run
from simlab.scheduler import TickEngine, make_policy, run_episode
from simlab.scheduler.phased import PhasePolicy
from simlab.scheduler.settings import EngineConfig, ScheduleConfig
from simlab.store import load_run


def worker(i: int, income: float | None, hours: int | None = 40, age: int = 30) -> Persona:
    attrs = {"income_usd": income, "hours_per_week": hours}
    return Persona(id=f"w{i}", name=f"Worker {i}", age=age, description="A test worker.",
                   occupation="clerk", attributes=attrs)


_ENGINE_KEYS = ("max_reasks", "on_failure", "max_consecutive_failures")


def economy(pop, backend=None, max_steps=60, **kw) -> EconomyScenario:
    kw.setdefault("n_workers", len(pop))
    engine = {k: kw.pop(k) for k in _ENGINE_KEYS if k in kw}
    seed = kw.pop("seed", 5)
    sc = EconomyScenario.create(EconomyConfig(**kw), pop, episode_id="ep0", seed=seed)
    settings = EngineConfig(max_steps=max_steps, **engine)
    run_episode(TickEngine(sc, backend or MockBackend(), settings=settings))
    return sc


class Counting(MockBackend):
    batches: ClassVar[list[int]] = []

    def generate(self, requests):
        Counting.batches.append(len(requests))
        return super().generate(requests)


# ------------------------------------------------------------------- skills
@pytest.mark.parametrize(("income", "hours", "skill", "source"), [
    (104_000, 40, 50.0, "income/hours"),
    (52_000, None, 25.0, "income/default"),     # income, no usual hours: 40 h assumed
    (52_000, 0, 25.0, "income/default"),
    (0, 40, 7.25, "min_skill"),
    (-3_000, 40, 7.25, "min_skill"),
    (None, None, 7.25, "min_skill"),             # census null income (under 15)
    (5_000, 40, 7.25, "income/hours"),           # $2.40/h: clipped to the floor
    (300_000, 2, 1000.0, "income/hours"),        # $2,885/h capped
])
def test_skill_is_the_hourly_wage_implied_by_income(income, hours, skill, source):
    rng = np.random.default_rng(0)
    assert worker_skill(worker(0, income, hours), SkillRule(), rng) == (
        pytest.approx(skill), source)


def test_personas_without_income_draw_a_lognormal_skill():
    p = Persona(id="x", name="X Y", age=40, description="No census data.")
    draw = 25.0 * math.exp(0.6 * np.random.default_rng(3).standard_normal())
    assert worker_skill(p, SkillRule(), np.random.default_rng(3)) == (
        pytest.approx(draw), "lognormal")


def test_a_non_numeric_income_is_named():
    p = Persona(id="x", name="X Y", age=40, description="d", attributes={"income_usd": "lots"})
    with pytest.raises(ValueError, match="'income_usd'"):
        worker_skill(p, SkillRule(), np.random.default_rng(0))


# -------------------------------------------------------- phases and batches
def test_phase_plan_with_voting():
    pop = [worker(i, 50_000) for i in range(3)]
    sc = EconomyScenario.create(EconomyConfig(n_workers=3, ticks=5, tax_year=2, voting=True),
                                pop, episode_id="e", seed=0)
    assert [(p.kind, p.tick) for p in sc.phases] == [
        ("work", 0), ("work", 1), ("vote", 2), ("plan", 2), ("work", 2), ("work", 3),
        ("vote", 4), ("plan", 4), ("work", 4)]


def test_every_period_is_one_batch_and_the_planner_acts_every_k():
    Counting.batches = []
    pop = [worker(i, 20_000 * (i + 1)) for i in range(6)]
    sc = economy(pop, Counting(), ticks=4, tax_year=2, planner="llm")
    assert Counting.batches == [6, 6, 1, 6, 6]
    assert sc.termination_reason == "completed"
    assert [r["tick"] for r in sc.rows["ticks"]] == [0, 1, 2, 3]


def test_rule_agents_never_reach_the_backend():
    Counting.batches = []
    pop = [worker(i, 20_000 * (i + 1)) for i in range(4)]
    sc = economy(pop, Counting(), worker_policy="rule", planner="saez")
    assert Counting.batches == []
    assert sc.termination_reason == "completed"


# --------------------------------------------------------------- exact metrics
def two_workers():
    # skills: 104,000 / (40*52) = $50/h and 20,800 / (40*52) = $10/h
    return [worker(0, 104_000), worker(1, 20_800)]


def test_one_period_by_hand():
    replies = ['{"hours": 40}', '{"hours": 20}']
    sc = economy(two_workers(), MockBackend(replies=replies), ticks=1, tax_schedule="flat",
                 flat_rate=20)
    row = sc.rows["ticks"][0]
    # pre-tax 40*50*52 = 104,000 and 20*10*52 = 10,400; tax 20%; rebate half the revenue
    tax = 20_800 + 2_080
    c_a, c_b = 104_000 - 20_800 + tax / 2, 10_400 - 2_080 + tax / 2  # 94,640 and 19,760
    u_a = 2 * (math.sqrt(c_a) - 1) - 0.0036 * 40 ** 3 / 3
    u_b = 2 * (math.sqrt(c_b) - 1) - 0.0036 * 20 ** 3 / 3
    assert row["labour_supply"] == 60 and row["mean_hours"] == 30
    assert row["revenue"] == pytest.approx(22_880) and row["rebate"] == pytest.approx(11_440)
    assert row["pretax_mean"] == pytest.approx(57_200)
    assert row["posttax_mean"] == pytest.approx((c_a + c_b) / 2)
    assert row["gini_pretax"] == pytest.approx((104_000 - 10_400) / (2 * 114_400))
    assert row["gini_posttax"] == pytest.approx((c_a - c_b) / (2 * 114_400))
    assert row["welfare_utilitarian"] == pytest.approx((u_a + u_b) / 2)
    # inverse-income weights 1/104,000 : 1/10,400 = 1 : 10
    assert row["welfare_inverse_income"] == pytest.approx((u_a + 10 * u_b) / 11)
    assert row["effective_rate"] == pytest.approx(20.0) and row["n_failed"] == 0
    labour = {r["agent_id"]: r for r in sc.rows["labour"]}
    assert labour["w0"]["skill"] == 50 and labour["w1"]["consumption"] == pytest.approx(c_b)
    assert [r["rate"] for r in sc.rows["schedule"]] == [20.0]


def test_invalid_hours_are_reasked_then_recorded_and_the_worker_keeps_its_hours():
    # worker 0 answers 45 (not on the grid) twice; worker 1 is fine
    replies = ['{"hours": 45}', '{"hours": 20}', '{"hours": 45}']
    sc = economy(two_workers(), MockBackend(replies=replies), ticks=1, tax_schedule="flat",
                 flat_rate=20, max_reasks=1)
    failures = [e for e in sc.log if e.kind == FAILURE]
    assert [e.speaker for e in failures] == ["w0"]
    assert "schema" in failures[0].content  # the backend's schema check caught it
    labour = {r["agent_id"]: r for r in sc.rows["labour"]}
    assert labour["w0"]["hours"] == 40 and labour["w0"]["how"] == "failed"  # default hours
    assert sc.rows["ticks"][0]["n_failed"] == 1


def test_interpret_rejects_off_grid_hours_without_a_schema_check():
    sc = EconomyScenario.create(EconomyConfig(n_workers=2), two_workers(), episode_id="e",
                                seed=0)
    from simlab.backends.base import ChatResponse

    agent = sc.by_key["w0"]
    assert not sc.interpret(agent, ChatResponse(text='{"hours": 35}')).ok
    assert not sc.interpret(agent, ChatResponse(text='{"hours": true}')).ok
    ok = sc.interpret(agent, ChatResponse(text='Sure! {"hours": 30}'))
    assert ok.ok and ok.data == {"hours": 30}


# ------------------------------------------------------------------ planners
def test_llm_planner_sees_a_summary_and_its_changes_are_clipped():
    replies = ['{"hours": 40}', '{"hours": 20}'] * 2 + [
        '{"changes": [-10, 10], "reason": "help the poor"}'] + ['{"hours": 40}'] * 2
    backend = MockBackend(replies=replies)
    sc = economy(two_workers(), backend, ticks=3, tax_year=2, tax_schedule="custom",
                 brackets=[0, 50_000], rates=[5, 95])
    planner_call = backend.calls[4]
    assert planner_call.tag == "planner_llm"
    prompt = planner_call.messages[-1].content
    assert "Tax year 1 summary" in prompt and "Gini" in prompt
    assert sc.schedule.rates == (0.0, 100.0)  # 5-10 and 95+10, clipped
    assert [r["top_rate"] for r in sc.rows["ticks"]] == [95, 95, 100]
    # workers saw the announcement, never the planner's summary
    for key in sc.workers:
        seen = [e for e in sc.log.perceived(key)[0] if e.speaker != key]
        assert any(e.kind == "policy" for e in seen)
        assert not any("summary" in e.content for e in seen)


def test_a_failed_plan_keeps_the_rates():
    replies = ['{"hours": 40}'] * 4 + ['{"changes": [50]}', '{"changes": [99]}'] + \
        ['{"hours": 40}'] * 2
    sc = economy(two_workers(), MockBackend(replies=replies), ticks=3, tax_year=2,
                 tax_schedule="flat", flat_rate=20)
    assert sc.schedule.rates == (20.0,)
    assert any(e.kind == FAILURE and e.speaker == "planner_llm" for e in sc.log)


def test_us_federal_planner_restores_the_us_schedule():
    pop = [worker(i, 30_000 * (i + 1)) for i in range(3)]
    sc = economy(pop, worker_policy="rule", planner="us_federal", tax_schedule="flat",
                 ticks=3, tax_year=2)
    assert [r["top_rate"] for r in sc.rows["ticks"]] == [20, 20, 37]
    assert sc.schedule.thresholds[1] == 11_600


# -------------------------------------------------------------------- voting
def test_workers_elect_the_planner_by_plurality():
    pop = [worker(i, 25_000 * (i + 1)) for i in range(4)]
    work = ['{"hours": 40}'] * 8
    votes = ['{"vote": "Saez planner"}', '{"vote": "US federal planner"}',
             '{"vote": "Saez planner"}', '{"vote": "LLM planner"}']
    sc = economy(pop, MockBackend(replies=work + votes + ['{"hours": 40}'] * 4), ticks=3,
                 tax_year=2, voting=True, planner="llm")
    assert sc.incumbent == "saez"
    [election] = sc.rows["elections"]
    assert (election["votes_saez"], election["votes_us_federal"], election["votes_llm"],
            election["tie_broken"]) == (2, 1, 1, False)
    assert [r["vote"] for r in sc.rows["votes"]] == [
        "Saez planner", "US federal planner", "Saez planner", "LLM planner"]
    plan = next(e for e in sc.log if e.kind == "policy")
    assert plan.speaker == "planner_saez" and json.loads(plan.data)["planner"] == "saez"
    assert [r["planner"] for r in sc.rows["ticks"]] == ["llm", "llm", "saez"]


def test_a_tied_election_is_settled_by_lot():
    pop = [worker(i, 25_000 * (i + 1)) for i in range(4)]
    votes = ['{"vote": "Saez planner"}', '{"vote": "US federal planner"}'] * 2
    winners = set()
    for seed in range(8):
        sc = economy(pop, MockBackend(replies=['{"hours": 40}'] * 8 + votes), ticks=3,
                     tax_year=2, voting=True, planner="llm", seed=seed)
        [election] = sc.rows["elections"]
        assert election["tie_broken"] and election["winner"] in ("saez", "us_federal")
        winners.add(election["winner"])
    assert winners == {"saez", "us_federal"}


def test_rule_voters_are_deterministic():
    pop = [worker(i, 25_000 * (i + 1)) for i in range(5)]
    runs = [economy(pop, worker_policy="rule", voting=True, planner="saez", ticks=6, seed=2)
            for _ in range(2)]
    assert runs[0].rows["elections"] == runs[1].rows["elections"]
    assert len(runs[0].rows["elections"]) == 2


# ---------------------------------------------------------------- archetypes
def test_archetypes_ask_one_worker_per_cell_and_broadcast():
    Counting.batches = []
    pop = [worker(i, 20_000 * (i + 1)) for i in range(6)]
    sc = economy(pop, Counting(), archetypes=True, archetype_by=["skill_band"], skill_bands=2,
                 ticks=2, tax_year=5)
    assert Counting.batches == [2, 2]
    cells = sc.arch.members
    assert sorted(map(len, cells.values())) == [3, 3]
    for tick in (0, 1):
        hours = {r["agent_id"]: r["hours"] for r in sc.rows["labour"] if r["tick"] == tick}
        for members in cells.values():
            assert len({hours[m] for m in members}) == 1
    how = [r["how"] for r in sc.rows["labour"] if r["tick"] == 0]
    assert how.count("archetype") == 4 and how.count("model") == 2


# -------------------------------------------------------------- config errors
@pytest.mark.parametrize(("kw", "message"), [
    ({"planner": "oracle"}, "scenario.planner"),
    ({"voting": True, "planner": "fixed"}, "scenario.planner: expected one of the candidates"),
    ({"voting": True, "candidates": ["saez"]}, "scenario.candidates"),
    ({"ticks": 0}, "scenario.ticks"),
    ({"n_workers": 9}, "population: the economy needs scenario.n_workers=9"),
    ({"worker_policy": "smart"}, "scenario.worker_policy"),
])
def test_bad_settings_name_their_key(kw, message):
    if message.startswith("population"):  # a valid config the population cannot fill
        config = EconomyConfig(**{"n_workers": 2, **kw})
        with pytest.raises(ValueError, match=message):
            EconomyScenario.create(config, two_workers(), episode_id="e", seed=0)
    else:
        with pytest.raises(ValueError, match=message):
            EconomyConfig(**{"n_workers": 2, **kw})


def test_the_phase_plan_schedules_whatever_schedule_is_configured():
    # every period is one batch of its phase's actors: a configured schedule
    # (engine.schedule, or a policy object given to the engine) does not apply
    sc = EconomyScenario.create(EconomyConfig(n_workers=2), two_workers(), episode_id="e",
                                seed=0)
    assert isinstance(TickEngine(sc, MockBackend(), schedule=make_policy("round_robin")).policy,
                      PhasePolicy)
    Counting.batches = []
    pop = [worker(i, 20_000 * (i + 1)) for i in range(6)]
    sc = EconomyScenario.create(EconomyConfig(n_workers=6, ticks=4, tax_year=2, planner="llm"),
                                pop, episode_id="ep0", seed=5)
    settings = EngineConfig(max_steps=60, schedule=ScheduleConfig(name="round_robin"))
    engine = TickEngine(sc, Counting(), settings=settings)
    assert isinstance(engine.policy, PhasePolicy)
    run_episode(engine)
    assert Counting.batches == [6, 6, 1, 6, 6]  # as test_every_period_is_one_batch...
    assert sc.termination_reason == "completed"


# ------------------------------------------------------- store and sweeps
def test_same_seed_same_events():
    pop = [worker(i, 20_000 * (i + 1)) for i in range(4)]
    a, b = economy(pop, seed=9), economy(pop, seed=9)
    assert [e.to_row() for e in a.log] == [e.to_row() for e in b.log]
    assert a.rows == b.rows


def test_runs_store_tables_and_a_planner_sweep_compares(tmp_path):
    dirs = []
    for planner in ("saez", "us_federal"):
        for seed in (0, 1):
            cfg = compose("scenario=economy", "backend=mock", "population=sampled",
                          "population.n=8", "scenario.n_workers=6",
                          "scenario.worker_policy=rule", f"scenario.planner={planner}",
                          "episodes=2", "progress=false", f"seed={seed}")
            d = tmp_path / f"{planner}_{seed}"
            run(cfg, d)
            dirs.append(d)
    tables = load_run(dirs[0])
    assert {"ticks", "schedule", "labour"} <= set(tables.tables)
    assert tables.tables["ticks"].height == 2 * 3  # 2 episodes of the default 3 periods
    summary = EconomyScenario.summarize(tables)["economy"]
    assert summary["planner"].to_list() == ["saez", "saez"]
    stacked = summarize_runs([tmp_path])["economy"]
    assert stacked.height == 8 and set(stacked["run_seed"]) == {0, 1}
    table = economy_comparison([tmp_path])
    assert table["planner"].to_list() == ["saez", "us_federal"]
    assert table["episodes"].to_list() == [4, 4]
    assert {"welfare_utilitarian_mean", "gini_posttax_mean", "revenue_mean"} <= set(
        table.columns)
    # simlab analyze on the sweep: the same comparison per planner group, with intervals
    an = analyze([tmp_path], out=tmp_path / "analysis", formats=["md"])
    assert an.group_keys == ["scenario.planner"]
    assert an.episodes["failure_rate"].to_list() == [0.0] * 8  # actions, not utterances
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "These runs hold no utterances" in report and "## Headline comparison" in report
    welfare = {r["planner"]: r["welfare_utilitarian_mean"] for r in table.iter_rows(named=True)}
    section = report[report.index("### economy\n"):]
    assert "| metric | scenario.planner=saez | scenario.planner=us_federal |" in section
    cells = next(ln for ln in section.splitlines()
                 if ln.startswith("| welfare_utilitarian |")).split("|")
    for planner, cell in zip(("saez", "us_federal"), cells[2:4], strict=True):
        assert float(cell.split()[0]) == pytest.approx(welfare[planner], rel=1e-3)
        assert cell.strip().endswith("(n=4)")
    assert "Difference scenario.planner=us_federal − scenario.planner=saez" in report
    assert (tmp_path / "analysis" / "plots" / "economy_ticks.png").is_file()
    assert (tmp_path / "analysis" / "plots" / "economy.png").is_file()


def test_workers_are_census_people_by_default(tmp_path):
    cfg = compose("scenario=economy", "backend=mock", "scenario.worker_policy=rule",
                  "episodes=1", "progress=false")
    assert cfg.population.kind.value == "census"
    assert compose("scenario=economy", "population=curated").population.kind.value == "curated"
    run(cfg, tmp_path / "run")
    tables = load_run(tmp_path / "run")
    labour = tables.tables["labour"]
    assert labour["skill_source"].is_in(["income/hours", "income/default", "min_skill"]).all()
    workers = tables.agents.filter(tables.agents["role"] == "worker")
    assert workers.height == 12 and all('"income_usd"' in a for a in workers["attributes_json"])
