"""Conditional interventions (``when:``): applied once, at the first tick from ``at`` on
after the scenario's indicators pass the test; checked before the run; forks agree."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import compose
from test_interventions import _interventions, _run

from scenarios.dialogue import DialogueScenario
from scenarios.economy import EconomyScenario
from scenarios.opinion import OpinionScenario
from simlab.events import WALL_CLOCK_COLUMNS
from simlab.research.apply import due
from simlab.research.conditions import parse_condition
from simlab.research.interventions import InterventionError, parse_interventions
from simlab.runner import run
from simlab.store import load_run

# The rule agents' (DeGroot) stances of _run(ticks=6), tick by tick, without interventions:
#   var_stance  1.889, 0.556, 0.25, 0.25, 0.25, 0.25
#   mean_stance 4.333, 4.333, 4.5,  4.5,  4.5,  4.5
# A test reads the row the previous tick left, so it can first fire at the start of tick 1.


def _ticks() -> list[dict]:
    return _run([], ticks=6).scenario.rows["ticks"]


def test_the_opinion_indicators_are_the_last_ticks_row():
    rows = _ticks()
    assert [round(r["var_stance"], 3) for r in rows] == [1.889, 0.556, 0.25, 0.25, 0.25, 0.25]
    assert [round(r["mean_stance"], 3) for r in rows] == [4.333, 4.333, 4.5, 4.5, 4.5, 4.5]


def test_a_condition_fires_once_at_the_first_tick_after_it_holds():
    engine = _run([{"when": "var_stance < 1", "kind": "broadcast", "text": "Calm."}], ticks=6)
    (event,) = _interventions(engine)  # it still holds later, but fires only once
    assert event.step == 2  # tick 1 left var 0.556
    data = json.loads(event.data)
    assert data["when"] == "var_stance < 1" and data["at"] == 0
    assert data["state"] == {"var_stance": pytest.approx(5 / 9)}
    assert due(engine.interventions, engine.scenario, 5) == []  # the log says it fired


@pytest.mark.parametrize(("spec", "step"), [
    ({"when": "var_stance < 1 and mean_stance > 4.4"}, 3),  # both first after tick 2
    ({"when": "var_stance <= 0.25"}, 3),
    ({"when": "var_stance < 1", "at": 4}, 4),  # holds long before: waits for at
    ({"when": "mean_stance != 4.5", "at": 0}, 1),  # tick 0 is the first row
    ({"when": "var_stance > 1", "at": 2}, None),  # held only before at
    ({"when": "mean_stance > 6"}, None),  # never
])
def test_when_and_at_together(spec, step):
    engine = _run([{**spec, "kind": "broadcast", "text": "News."}], ticks=6)
    assert [e.step for e in _interventions(engine)] == ([] if step is None else [step])
    assert engine.scenario.check_termination() == "completed"  # the run went on to its end
    assert len(engine.scenario.rows["ticks"]) == 6


def test_conditions_keep_spec_order_and_fire_independently():
    engine = _run([{"when": "var_stance < 0.3", "kind": "broadcast", "text": "Second."},
                   {"at": 3, "kind": "broadcast", "text": "First."},
                   {"when": "var_stance < 1", "kind": "broadcast", "text": "Early."}], ticks=6)
    assert [(e.step, e.content) for e in _interventions(engine)] == [
        (2, "Early."), (3, "Second."), (3, "First.")]


@pytest.mark.parametrize(("when", "message"), [
    ("mean_stance >> 4", "interventions[0].when: 'mean_stance >> 4' is not <indicator> <op> "
                         "<number>"),
    ("loudness > 2", "interventions[0].when: 'loudness' is not an indicator of the opinion "
                     "scenario (its indicators: n_reported, n_with_stance, mean_stance"),
    ("mean_stance > 4 or var_stance < 1", "is not <indicator> <op> <number>"),
    ("", "interventions[0].when: must be a test like 'mean_stance > 4', got ''"),
    (4, "interventions[0].when: must be a test"),
])
def test_a_bad_condition_names_its_index_and_the_indicators(when, message):
    with pytest.raises(InterventionError) as err:
        parse_interventions([{"when": when, "kind": "broadcast", "text": "x"}], OpinionScenario)
    assert message in str(err.value)


def test_a_scenario_without_indicators_refuses_conditions():
    with pytest.raises(InterventionError) as err:
        parse_interventions([{"at": 1, "when": "turns > 3", "kind": "set",
                              "key": "scenario.max_turns", "value": 4}], DialogueScenario)
    assert "interventions[0].when: the dialogue scenario has no indicators" in str(err.value)


def test_parse_condition_reads_numbers_and_and():
    c = parse_condition(" revenue >= 1e3 and gini_posttax<.4 ", "w",
                        EconomyScenario.indicator_names, "economy")
    assert c.tests == (("revenue", ">=", 1000.0), ("gini_posttax", "<", 0.4))
    assert c.holds({"revenue": 1000, "gini_posttax": 0.39})
    assert not c.holds({"revenue": 1000, "gini_posttax": float("nan")})
    assert not c.holds({"revenue": 1000})  # a missing value never holds


def test_an_economy_condition_reads_its_ticks(tmp_path):
    cfg = compose("scenario=economy", "backend=mock", "scenario.worker_policy=rule",
                  "population=sampled", "population.n=6", "scenario.n_workers=6",
                  "scenario.ticks=4", "episodes=1", "progress=false",
                  "interventions=[{when:'revenue > 0',kind:broadcast,text:'Budget news.'}]")
    run(cfg, tmp_path / "run")
    tables = load_run(tmp_path / "run")
    (event,) = tables.events.filter(kind="intervention").iter_rows(named=True)
    revenue = tables.tables["ticks"]["revenue"].to_list()
    assert json.loads(event["data"])["state"] == {"revenue": revenue[0]} and revenue[0] > 0


BASE = ("scenario=opinion", "backend=mock", "scenario.agent_policy=rule",
        "population=sampled", "population.n=6", "scenario.n_agents=6", "scenario.ticks=6",
        "scenario.survey_every=0", "episodes=2", "progress=false")
CALM = "interventions=[{when:'var_stance < 1',kind:broadcast,text:Calm.}]"


def _events(run_dir) -> pl.DataFrame:
    return load_run(run_dir).events.drop(WALL_CLOCK_COLUMNS)


def test_a_fork_keeps_a_parents_condition_and_refuses_a_new_early_one(tmp_path):
    run(compose(*BASE, CALM), tmp_path / "parent")
    assert _events(tmp_path / "parent").filter(kind="intervention").height >= 1
    run(compose(*BASE, CALM, f"fork.parent={tmp_path / 'parent'}", "fork.at_step=3"),
        tmp_path / "fork")
    assert _events(tmp_path / "fork").equals(_events(tmp_path / "parent"))
    from simlab.research.fork import ForkError

    with pytest.raises(ForkError, match=r"interventions\[0\]\.at: a fork at step 3"):
        run(compose(*BASE, f"fork.parent={tmp_path / 'parent'}", "fork.at_step=3",
                    "interventions=[{when:'var_stance < 9',kind:broadcast,text:New.}]"),
            tmp_path / "fork2")
