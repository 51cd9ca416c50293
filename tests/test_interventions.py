"""Interventions: every kind, every audience form, each scenario's refusal of a setting it
cannot change, and errors that name the field and its index."""

from __future__ import annotations

import json

import pytest
from conftest import compose
from test_economy import worker
from test_opinion import people

from scenarios.auction import AuctionScenario
from scenarios.dialogue import DialogueScenario
from scenarios.economy import EconomyConfig, EconomyScenario
from scenarios.opinion import OpinionConfig, OpinionScenario
from simlab.backends.mock import MockBackend
from simlab.events import INTERVENTION, UTTERANCE
from simlab.research.interventions import (
    InterventionError,
    check_values,
    parse_interventions,
)
from simlab.runner import run
from simlab.scheduler import TickEngine, run_episode
from simlab.scheduler.settings import EngineConfig
from simlab.store import load_run

POP = people(6)  # a0..a5; a1, a3, a5 are women


def _run(specs: list[dict], *, ticks: int = 4, policy: str = "rule", **kw) -> TickEngine:
    sc = OpinionScenario.create(OpinionConfig(n_agents=6, ticks=ticks, survey_every=0,
                                              agent_policy=policy, **kw), POP,
                                episode_id="ep0", seed=4)
    ivs = parse_interventions(specs, OpinionScenario, POP)
    check_values(ivs, sc)
    engine = TickEngine(sc, MockBackend(), settings=EngineConfig(max_steps=60),
                        interventions=ivs)
    run_episode(engine)
    return engine


def _interventions(engine: TickEngine) -> list:
    return [e for e in engine.scenario.log if e.kind == INTERVENTION]


def _posters(engine: TickEngine, step: int) -> set[str]:
    return {e.speaker for e in engine.scenario.log if e.kind == UTTERANCE and e.step == step}


# ------------------------------------------------------------------ broadcast
@pytest.mark.parametrize(("audience", "expected"), [
    ("all", ("a0", "a1", "a2", "a3", "a4", "a5")),
    ("role:member", ("a0", "a1", "a2", "a3", "a4", "a5")),
    ("group:gender=woman", ("a1", "a3", "a5")),
    ("group:age_band=18-34", ("a0", "a1", "a2")),  # ages 20, 27, 34
    (["a4", "a2"], ("a2", "a4")),
    ({"agents": ["a0"]}, ("a0",)),
    ("agents:a5,a3", ("a3", "a5")),
])
def test_a_broadcast_reaches_exactly_its_audience(audience, expected):
    engine = _run([{"at": 2, "kind": "broadcast", "text": "The mill closes.",
                    "audience": audience}])
    (event,) = _interventions(engine)
    assert (event.step, event.speaker, event.audience) == (2, "env", expected)
    assert event.content == "The mill closes."
    assert json.loads(event.data)["kind"] == "broadcast"
    seen = {k for k in POP_KEYS if any("[Narrator] The mill closes." in m.content
                                       for m in engine.projector.view(k, engine.scenario.log))}
    assert seen == set(expected)


POP_KEYS = [p.id for p in POP]


def test_a_broadcast_comes_before_anyone_acts_in_its_tick():
    engine = _run([{"at": 1, "kind": "broadcast", "text": "News."}], policy="llm")
    log = list(engine.scenario.log)
    first = next(e for e in log if e.kind == INTERVENTION)
    assert all(e.seq > first.seq for e in log if e.kind == UTTERANCE and e.step == 1)
    request = [r for r in engine.scenario.calls if r[1] == 1]
    assert len(request) == 6  # every agent asked at tick 1, after the news


# ------------------------------------------------------------------------ set
def test_set_changes_the_topic_from_its_tick_on():
    engine = _run([{"at": 2, "kind": "set", "key": "scenario.topic", "value": "bridge tolls"}])
    sc = engine.scenario
    assert sc.topic == sc.config.topic == "bridge tolls"
    days = [e.content for e in sc.log if e.kind == "narration"]
    # day 3's prompt was written at the end of tick 1, before the change; day 4's after
    assert ["bridge tolls" in d for d in days] == [False, False, False, True]
    assert "bridge tolls" in engine.projector.view("a0", sc.log)[0].content
    (event,) = _interventions(engine)
    assert event.audience == () and event.content == "scenario.topic = 'bridge tolls'"


def test_set_of_sampling_changes_the_requests():
    engine = _run([{"at": 1, "kind": "set", "key": "scenario.max_tokens", "value": 33}],
                  policy="llm", ticks=2)
    assert engine.scenario.sampling["max_tokens"] == 33


@pytest.mark.parametrize(("cls", "key"), [
    (OpinionScenario, "n_agents"), (EconomyScenario, "n_workers"),
    (AuctionScenario, "n_items"), (DialogueScenario, "roles")])
def test_each_scenario_refuses_a_setting_it_cannot_change(cls, key):
    with pytest.raises(InterventionError) as err:
        parse_interventions([{"at": 0, "kind": "broadcast", "text": "x"},
                             {"at": 1, "kind": "set", "key": f"scenario.{key}", "value": 3}],
                            cls)
    assert str(err.value).startswith(f"interventions[1].key: the {cls.name} scenario cannot "
                                     f"set scenario.{key}")


def test_a_set_value_is_checked_against_the_config_before_the_run():
    with pytest.raises(InterventionError, match=r"^interventions\[0\]\.value: scenario\."
                                                r"self_weight"):
        _run([{"at": 1, "kind": "set", "key": "scenario.self_weight", "value": "high"}])


# -------------------------------------------------------------------- persona
def test_a_persona_change_reaches_its_system_prompt_from_its_tick():
    engine = _run([{"at": 2, "kind": "persona", "agents": ["a2"], "field": "occupation",
                    "value": "fisher"}], policy="llm", ticks=3)
    sc = engine.scenario
    assert sc.by_key["a2"].persona.occupation == "fisher"
    # the journal's rows and the mock's requests are the same calls, in the same order
    systems = {(row[1], row[2]): req.messages[0].content
               for row, req in zip(sc.calls, engine.backend.calls, strict=True)}
    assert ["fisher" in systems[(t, "a2")] for t in range(3)] == [False, False, True]
    assert not any("fisher" in systems[(t, "a0")] for t in range(3))


def test_a_persona_attribute_change_and_a_bad_value():
    engine = _run([{"at": 1, "kind": "persona", "agents": ["a0", "a1"],
                    "field": "attributes.party", "value": "green"}])
    assert [engine.scenario.by_key[k].persona.attributes["party"] for k in ("a0", "a1")] == \
        ["green", "green"]
    with pytest.raises(InterventionError, match=r"^interventions\[0\]\.value: -4 is not a "
                                                r"valid age"):
        parse_interventions([{"at": 1, "kind": "persona", "agents": ["a0"], "field": "age",
                              "value": -4}], OpinionScenario, POP)


# ------------------------------------------------------------- agents, edges
def test_an_added_agent_joins_connected_and_acts_from_its_tick():
    newcomer = {"id": "zed", "name": "Zed Quinn", "age": 40, "description": "A newcomer."}
    engine = _run([{"at": 2, "kind": "add_agent", "persona": newcomer,
                    "connect": ["a0", "a3"]}])
    sc = engine.scenario
    assert "zed" in sc.participants and sc.by_key["zed"].role == "member"
    assert set(sc.graph.neighbors("zed")) == {"a0", "a3"}
    assert "zed" in sc.audience_of("a0") and sc.audience_of("zed") == ("a0", "a3")
    assert "zed" not in _posters(engine, 1) and "zed" in _posters(engine, 2)
    assert len(sc.rows["stances"]) == 6 * 2 + 7 * 2


def test_a_removed_agent_stops_acting_and_is_heard_by_no_one():
    engine = _run([{"at": 2, "kind": "remove_agent", "agents": ["a1"]}])
    sc = engine.scenario
    assert "a1" in _posters(engine, 1) and "a1" not in _posters(engine, 2)
    assert sc.graph.degree("a1") == 0 and all("a1" not in sc.audience_of(k) for k in POP_KEYS)
    assert sc.retired == {"a1"} and sc.rows["ticks"][-1]["n_with_stance"] == 5
    (event,) = _interventions(engine)
    assert json.loads(event.data)["applied"] == ["a1"]


def test_edges_are_added_and_removed():
    base = _run([], ticks=2).scenario
    pair = next((a, b) for a in POP_KEYS for b in POP_KEYS
                if a < b and not base.graph.has_edge(a, b))
    edge = next(iter(base.graph.edges))
    engine = _run([{"at": 1, "kind": "add_edges", "edges": [list(pair)]},
                   {"at": 1, "kind": "remove_edges", "edges": [list(edge)]}], ticks=2)
    sc = engine.scenario
    assert sc.graph.has_edge(*pair) and not sc.graph.has_edge(*edge)
    assert pair[1] in sc.audience_of(pair[0]) and edge[1] not in sc.audience_of(edge[0])


def test_an_unsupported_kind_is_refused_by_the_scenario():
    with pytest.raises(InterventionError, match=r"^interventions\[0\]\.kind: the dialogue "
                                                r"scenario does not support add_agent"):
        parse_interventions([{"at": 1, "kind": "add_agent", "persona": "a0"}],
                            DialogueScenario, POP)


# --------------------------------------------------------------- bad specs
@pytest.mark.parametrize(("spec", "message"), [
    ("news", r"interventions\[1\]: must be a mapping"),
    ({"at": 1, "kind": "shout"}, r"interventions\[1\]\.kind: must be one of broadcast"),
    ({"at": -1, "kind": "broadcast", "text": "x"}, r"interventions\[1\]\.at: must be a tick"),
    ({"at": 1, "kind": "broadcast", "text": "x", "who": "all"},
     r"interventions\[1\]\.who: not a field of a broadcast intervention"),
    ({"at": 1, "kind": "broadcast"}, r"interventions\[1\]\.text: required"),
    ({"at": 1, "kind": "broadcast", "text": " "}, r"interventions\[1\]\.text: must be "),
    ({"at": 1, "kind": "broadcast", "text": "x", "audience": "everyone"},
     r"interventions\[1\]\.audience: must be all, role"),
    ({"at": 1, "kind": "broadcast", "text": "x", "audience": "group:gender"},
     r"interventions\[1\]\.audience: a group is group:<attribute>=<value>"),
    ({"at": 1, "kind": "broadcast", "text": "x", "audience": "group:gender=female"},
     r"interventions\[1\]\.audience: no persona of the run's population has gender=female"),
    ({"at": 1, "kind": "broadcast", "text": "x", "audience": ["a0", "zz"]},
     r"interventions\[1\]\.audience: \['zz'\] are not persona ids"),
    ({"at": 1, "kind": "set", "key": "topic", "value": "x"},
     r"interventions\[1\]\.key: must be scenario.<field>"),
    ({"at": 1, "kind": "persona", "agents": ["a0"], "field": "id", "value": "x"},
     r"interventions\[1\]\.field: must be a persona field"),
    ({"at": 1, "kind": "add_agent", "persona": "nobody"},
     r"interventions\[1\]\.persona: 'nobody' is not a persona id"),
    ({"at": 1, "kind": "add_agent", "persona": {"id": "q", "name": "Q", "age": 300,
                                                 "description": "d"}},
     r"interventions\[1\]\.persona\.age: "),
    ({"at": 1, "kind": "remove_agent", "agents": []},
     r"interventions\[1\]\.agents: must be a list of agent ids"),
    ({"at": 1, "kind": "add_edges", "edges": [["a0"]]},
     r"interventions\[1\]\.edges\[0\]: must be a pair"),
    ({"at": 1, "kind": "persona", "agents": ["a0"], "field": "name", "value": "Bo"},
     r"interventions\[1\]\.field: must be a persona field"),
    ({"at": 1, "kind": "add_agent", "persona": "a1", "role": "x\ny"},
     r"interventions\[1\]\.role: must be a single line"),
])
def test_bad_specs_name_the_field_and_its_index(spec, message):
    with pytest.raises(InterventionError, match=f"^{message}"):
        parse_interventions([{"at": 0, "kind": "broadcast", "text": "ok"}, spec],
                            OpinionScenario, POP)


def test_an_agent_added_earlier_may_be_named_later():
    newcomer = {"id": "zed", "name": "Zed Quinn", "age": 40, "description": "A newcomer."}
    ivs = parse_interventions([{"at": 1, "kind": "add_agent", "persona": newcomer},
                               {"at": 2, "kind": "remove_agent", "agents": ["zed"]}],
                              OpinionScenario, POP)
    assert [iv.kind for iv in ivs] == ["add_agent", "remove_agent"]


# ------------------------------------------------------------- through a run
def test_a_run_records_its_interventions_and_refuses_bad_ones_before_writing(tmp_path):
    base = ("scenario=opinion", "backend=mock", "population=sampled", "population.n=8",
            "scenario.n_agents=6", "scenario.ticks=3", "scenario.survey_every=0",
            "episodes=2", "progress=false")
    cfg = compose(*base, 'interventions=[{at:1,kind:broadcast,text:"Flood warning."}]')
    run(cfg, tmp_path / "run")
    events = load_run(tmp_path / "run").events
    news = events.filter(kind=INTERVENTION)
    assert news["episode_id"].to_list() == ["ep00000", "ep00001"]
    assert news["step"].to_list() == [1, 1] and news["audience"].list.len().to_list() == [6, 6]
    bad = compose(*base, "interventions=[{at:1,kind:set,key:scenario.graph,value:sbm}]")
    with pytest.raises(InterventionError, match=r"interventions\[0\]\.key"):
        run(bad, tmp_path / "bad")
    assert not (tmp_path / "bad" / "manifest.json").exists()


def test_an_agent_that_left_cannot_join_again():
    with pytest.raises(InterventionError, match=r"^interventions\[1\]\.persona: 'a2' is "
                                                r"removed by interventions\[0\]"):
        parse_interventions([{"at": 1, "kind": "remove_agent", "agents": ["a2"]},
                             {"at": 3, "kind": "add_agent", "persona": "a2"}],
                            OpinionScenario, POP)


def test_values_and_roles_are_checked_against_the_episode_before_the_run():
    with pytest.raises(InterventionError, match=r"^interventions\[0\]\.audience: no agent "
                                                r"has role 'memebr' \(roles: member\)"):
        _run([{"at": 1, "kind": "broadcast", "text": "x", "audience": "role:memebr"}])
    sc = OpinionScenario.create(OpinionConfig(n_agents=6, ticks=2, survey_every=0), POP,
                                episode_id="ep0", seed=4)
    ok = parse_interventions([{"at": 1, "kind": "set", "key": "scenario.topic", "value": "x"}],
                             OpinionScenario, POP)
    check_values(ok, sc)
    assert sc.config.topic != "x"  # checking changes nothing


def test_a_set_of_sampling_leaves_the_planners_schedule_alone():
    pop = [worker(i, 20_000 + 30_000 * i) for i in range(4)]

    def run(specs):
        sc = EconomyScenario.create(EconomyConfig(n_workers=4, ticks=6, tax_year=2,
                                                  planner="saez", worker_policy="rule"),
                                    pop, episode_id="ep0", seed=3)
        engine = TickEngine(sc, MockBackend(), settings=EngineConfig(max_steps=60),
                            interventions=parse_interventions(specs, EconomyScenario, pop))
        run_episode(engine)
        return sc

    plain = run([])
    changed = run([{"at": 5, "kind": "set", "key": "scenario.temperature", "value": 0.1}])
    assert changed.schedule == plain.schedule and changed.sampling["temperature"] == 0.1
    flat = run([{"at": 5, "kind": "set", "key": "scenario.tax_schedule", "value": "flat"}])
    assert flat.tax_schedule == "flat" and flat.schedule != plain.schedule
