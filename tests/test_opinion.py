"""The opinion scenario: graph visibility, DeGroot rule agents by hand, survey waves,
polarisation metrics, archetypes, failures, graphs and the store."""

from __future__ import annotations

from typing import ClassVar

import networkx as nx
import numpy as np
import pytest
from conftest import compose

from scenarios.opinion import OpinionConfig, OpinionScenario
from scenarios.opinion.graphs import build_graph
from scenarios.opinion.metrics import (
    bimodality_coefficient,
    degroot,
    stance_assortativity,
    tick_metrics,
)
from scenarios.opinion.survey import parse_questions, rescale
from simlab.backends.mock import MockBackend
from simlab.events import FAILURE, UTTERANCE
from simlab.personas.model import Persona
from simlab.runner import run
from simlab.scheduler import TickEngine, make_policy, run_episode
from simlab.scheduler.phased import PhasePolicy
from simlab.scheduler.settings import EngineConfig, ScheduleConfig
from simlab.store import load_run

NAMES = ["Ana Diaz", "Ben Okafor", "Chloe Martin", "Dev Patel", "Eva Novak", "Femi Ade",
         "Gus Lund", "Hana Sato", "Ivo Petrov", "Jia Wen", "Kofi Mensah", "Lea Roth"]


def people(n: int, stances: list[int] | None = None) -> list[Persona]:
    return [
        Persona(id=f"a{i}", name=NAMES[i], age=20 + 7 * i, gender="woman" if i % 2 else "man",
                description="A test person.",
                attributes={"stance": stances[i]} if stances else {})
        for i in range(n)
    ]


_ENGINE_KEYS = ("max_reasks", "on_failure", "max_consecutive_failures")


def opinion_engine(pop, backend=None, **kw) -> TickEngine:
    """Build an opinion scenario on ``pop``, run it to the end; returns its engine."""
    kw.setdefault("n_agents", len(pop))
    engine = {k: kw.pop(k) for k in _ENGINE_KEYS if k in kw}
    seed = kw.pop("seed", 4)
    sc = OpinionScenario.create(OpinionConfig(**kw), pop, episode_id="ep0", seed=seed)
    eng = TickEngine(sc, backend or MockBackend(), settings=EngineConfig(max_steps=60, **engine))
    run_episode(eng)
    return eng


def opinion(pop, backend=None, **kw) -> OpinionScenario:
    return opinion_engine(pop, backend, **kw).scenario


RING = {"graph": "small_world", "degree": 2, "rewire_p": 0.0}  # a0-a1-a2-a3-a0


class Counting(MockBackend):
    batches: ClassVar[list[int]] = []

    def generate(self, requests):
        Counting.batches.append(len(requests))
        return super().generate(requests)


# ---------------------------------------------------------------- visibility
def test_nobody_ever_sees_a_non_neighbours_post():
    engine = opinion_engine(people(10), graph="scale_free", degree=2, ticks=3, survey_every=2)
    sc = engine.scenario
    names = {k: sc.by_key[k].name for k in sc.participants}
    for key in sc.participants:
        nbrs = set(sc.graph.neighbors(key))
        posts = [e for e in sc.log if e.kind == UTTERANCE and e.speaker != key]
        for e in posts:  # the audience of a post is exactly the poster's neighbours
            assert set(e.audience) == set(sc.graph.neighbors(e.speaker))
        heard = {e.speaker for e in sc.log.perceived(key)[0] if e.kind == UTTERANCE} - {key}
        assert heard <= nbrs
        view = engine.projector.view(key, sc.log)
        quoted = {n for m in view if m.role == "user" for line in m.content.splitlines()
                  for n in names.values() if line.startswith(f"{n}: ")}
        assert quoted <= {names[n] for n in nbrs}
        assert {names[n] for n in nbrs} & quoted or not nbrs


def test_survey_answers_are_private():
    sc = opinion(people(6), ticks=2, survey_every=1)
    answers = [e for e in sc.log if e.kind == "survey"]
    assert len(answers) == 12 and all(e.audience == () for e in answers)
    for key in sc.participants:
        seen = sc.log.perceived(key)[0]
        assert all(e.speaker == key for e in seen if e.kind == "survey")


# ------------------------------------------------------------ DeGroot by hand
def test_rule_agents_average_only_what_they_heard():
    # ring a0-a1-a2-a3-a0: a0 hears a1 and a3, never a2 (whose 7 would pull it up)
    sc = opinion(people(4, [1, 1, 7, 1]), agent_policy="rule", ticks=3, survey_every=0,
                 self_weight=0.5, **RING)
    assert sorted(sc.graph.neighbors("a0")) == ["a1", "a3"]
    by_tick = {}
    for r in sc.rows["stances"]:
        by_tick.setdefault(r["tick"], []).append(r["stance"])
    # t1: a0 = .5*1 + .5*1 = 1; a1 = .5*1 + .5*(1+7)/2 = 2.5 -> 3; a2 = .5*7 + .5*1 = 4;
    #     a3 = 2.5 -> 3.  t2: a0 = .5*1 + .5*3 = 2; a1 = .5*3 + .5*(1+4)/2 = 2.75 -> 3;
    #     a2 = .5*4 + .5*3 = 3.5 -> 4; a3 = 2.75 -> 3
    assert by_tick == {0: [1, 1, 7, 1], 1: [1, 3, 4, 3], 2: [2, 3, 4, 3]}
    t0, t2 = sc.rows["ticks"][0], sc.rows["ticks"][2]
    assert t0["mean_stance"] == 2.5 and t0["var_stance"] == pytest.approx(6.75)
    assert t2["mean_stance"] == 3.0 and t2["var_stance"] == pytest.approx(0.5)


def test_degroot_rounds_half_up_and_stays_on_the_scale():
    assert degroot(1, [4], 0.5, 7) == 3      # 2.5
    assert degroot(4, [1, 7], 0.5, 7) == 4
    assert degroot(7, [7, 7], 0.0, 5) == 5   # clipped to the 5-point scale
    assert degroot(2, [], 0.5, 7) == 2       # heard nobody


# ------------------------------------------------------------------- metrics
def test_bimodality_coefficient_by_hand():
    # [1,1,1,7,7,7]: skew 0; biased excess kurtosis m4/m2^2 - 3 = -2; bias-corrected
    # ((n+1)(-2) + 6)(n-1)/((n-2)(n-3)) = -10/3; BC = 1 / (-10/3 + 3*25/12) = 1/2.91667
    assert bimodality_coefficient(np.array([1, 1, 1, 7, 7, 7])) == pytest.approx(1 / (
        -10 / 3 + 75 / 12))
    assert np.isnan(bimodality_coefficient(np.array([4, 4, 4, 4])))
    assert np.isnan(bimodality_coefficient(np.array([1, 7, 1])))


def test_stance_assortativity_by_hand():
    g = nx.path_graph(["a", "b", "c", "d"])
    # edge ends (both directions): (1,1)x2, (1,7), (7,1), (7,7)x2 -> Pearson r = 3/9
    assert stance_assortativity(g, {"a": 1, "b": 1, "c": 7, "d": 7}) == pytest.approx(1 / 3)
    assert stance_assortativity(g, {"a": 1, "b": 7, "c": 1, "d": 7}) == pytest.approx(-1.0)
    assert np.isnan(stance_assortativity(g, {"a": 3, "b": 3, "c": 3, "d": 3}))
    assert np.isnan(stance_assortativity(nx.empty_graph(["a", "b"]), {"a": 1, "b": 7}))


@pytest.mark.parametrize("seed", range(5))
def test_assortativity_equals_networkx(seed):
    rng = np.random.default_rng(seed)
    g = nx.gnm_random_graph(40, 90, seed=seed)
    stance = {n: int(rng.integers(1, 8)) for n in g.nodes if n != 3}  # node 3: no stance
    h = g.subgraph(stance).copy()
    nx.set_node_attributes(h, stance, "stance")
    assert stance_assortativity(g, stance) == pytest.approx(
        nx.numeric_assortativity_coefficient(h, "stance"), abs=1e-12)


def test_group_means_and_extremes():
    g = nx.path_graph(["a", "b", "c", "d"])
    row, groups = tick_metrics(2, {"a": 1, "b": 7, "c": 4}, {"a": "x", "b": "x", "c": "y",
                                                               "d": "y"}, g, scale=7)
    assert row["n_reported"] == 3 and row["mean_stance"] == 4.0
    assert row["share_extreme"] == pytest.approx(2 / 3)
    assert groups == [
        {"tick": 2, "group": "x", "n": 2, "mean_stance": 4.0, "var_stance": 9.0},
        {"tick": 2, "group": "y", "n": 1, "mean_stance": 4.0, "var_stance": 0.0}]


# -------------------------------------------------------------------- surveys
def test_survey_waves_every_w_days_as_a_table():
    sc = opinion(people(5, [1, 2, 3, 4, 5]), agent_policy="rule", ticks=4, survey_every=2,
                 graph="sbm", p_in=0.0, p_out=0.0)  # no ties: stances never move
    assert [(p.kind, p.tick) for p in sc.phases] == [
        ("post", 0), ("post", 1), ("survey", 1), ("post", 2), ("post", 3), ("survey", 3)]
    rows = sc.rows["survey"]
    assert len(rows) == 2 * 5 * 3 and {r["wave"] for r in rows} == {0, 1}
    support = {r["agent_id"]: r["response"] for r in rows
               if r["wave"] == 1 and r["question_id"] == "support"}
    trust = {r["agent_id"]: r["response"] for r in rows
             if r["wave"] == 1 and r["question_id"] == "trust"}
    assert support == {"a0": 1, "a1": 2, "a2": 3, "a3": 4, "a4": 5}
    assert trust == {f"a{i}": rescale(s, 7, 5) for i, s in enumerate([1, 2, 3, 4, 5])}
    assert [rescale(s, 7, 5) for s in range(1, 8)] == [1, 2, 2, 3, 4, 4, 5]


@pytest.mark.parametrize(("questions", "message"), [
    ([{"id": "Bad Id", "text": "q", "scale": 5}], r"questions\[0\].id"),
    ([{"id": "a", "text": "q", "scale": 5}, {"id": "a", "text": "r"}], "duplicate"),
    ([{"id": "a", "text": "", "scale": 5}], r"questions\[0\].text"),
    ([{"id": "a", "text": "q", "scale": 1}], r"questions\[0\].scale"),
])
def test_bad_questionnaires_are_named(questions, message):
    with pytest.raises(ValueError, match=message):
        parse_questions(questions, "taxes")


# --------------------------------------------------------- batches, failures
def test_each_day_and_each_wave_is_one_batch():
    Counting.batches = []
    opinion(people(7), Counting(), ticks=2, survey_every=1)
    assert Counting.batches == [7, 7, 7, 7]


def test_bad_stances_are_reasked_then_recorded_as_failures():
    replies = ['{"stance": 9, "post": "hi"}', '{"stance": 3, "post": "fine"}',
               '{"stance": 0, "post": "hi"}']
    sc = opinion(people(2), MockBackend(replies=replies), ticks=1, survey_every=0,
                 max_reasks=1)
    [failure] = [e for e in sc.log if e.kind == FAILURE]
    assert failure.speaker == "a0"
    assert sc.rows["ticks"][0]["n_reported"] == 1
    assert sc.rows["ticks"][0]["n_with_stance"] == 1
    assert sc.rows["stances"][0]["stance"] is None and sc.rows["stances"][1]["stance"] == 3


def test_a_dead_backend_ends_the_episode():
    # the engine's consecutive-failure stop is off (as in the opinion ScenarioSpec)
    sc = opinion(people(4), MockBackend(fail_every=1), ticks=3, survey_every=0,
                 max_consecutive_failures=10**6)
    assert sc.termination_reason == "all_failed" and sc.steps_taken == 1


# ----------------------------------------------------------------- archetypes
def test_archetypes_broadcast_one_post_per_cell_to_each_members_neighbours():
    Counting.batches = []
    sc = opinion(people(8), Counting(), archetypes=True, archetype_by=["gender"], ticks=1,
                 survey_every=0)
    assert Counting.batches == [2]
    posts = {e.speaker: e for e in sc.log if e.kind == UTTERANCE}
    assert len(posts) == 8
    for members in sc.arch.members.values():
        assert len({posts[m].content for m in members}) == 1
        for m in members:
            assert set(posts[m].audience) == set(sc.graph.neighbors(m))


# --------------------------------------------------------------------- graphs
@pytest.mark.parametrize("kind", ["small_world", "scale_free", "sbm"])
def test_graphs_cover_every_agent_and_follow_the_seed(kind):
    keys = [f"k{i}" for i in range(12)]
    groups = {k: "old" if i < 6 else "young" for i, k in enumerate(keys)}
    a = build_graph(kind, keys, groups, np.random.default_rng(1))
    b = build_graph(kind, keys, groups, np.random.default_rng(1))
    assert set(a.nodes) == set(keys) and sorted(a.edges) == sorted(b.edges)


def test_sbm_blocks_are_the_demographic_groups():
    keys = [f"k{i}" for i in range(8)]
    groups = {k: "a" if i % 2 else "b" for i, k in enumerate(keys)}
    g = build_graph("sbm", keys, groups, np.random.default_rng(0), p_in=1.0, p_out=0.0)
    assert all(groups[u] == groups[v] for u, v in g.edges)
    assert g.number_of_edges() == 2 * 6  # two complete blocks of 4


@pytest.mark.parametrize(("kw", "message"), [
    ({"graph": "lattice"}, "scenario.graph"),
    ({"scale": 6}, "scenario.scale"),
    ({"p_in": 1.5}, "scenario.p_in"),
    ({"survey_every": 1, "questions": []}, "scenario.questions"),
])
def test_bad_settings_name_their_key(kw, message):
    with pytest.raises(ValueError, match=message):  # by the config, or at latest in setup
        OpinionScenario.create(OpinionConfig(n_agents=4, **kw), people(4), episode_id="e",
                               seed=0)


def test_the_phase_plan_schedules_whatever_schedule_is_configured():
    # every day is one batch of all agents: a configured schedule (engine.schedule, or a
    # policy object given to the engine) does not apply
    sc = OpinionScenario.create(OpinionConfig(n_agents=4), people(4), episode_id="e", seed=0)
    assert isinstance(TickEngine(sc, MockBackend(), schedule=make_policy("neighbours")).policy,
                      PhasePolicy)
    Counting.batches = []
    sc = OpinionScenario.create(OpinionConfig(n_agents=7, ticks=2, survey_every=1), people(7),
                                episode_id="ep0", seed=4)
    settings = EngineConfig(max_steps=60, schedule=ScheduleConfig(name="round_robin"))
    engine = TickEngine(sc, Counting(), settings=settings)
    assert isinstance(engine.policy, PhasePolicy)
    run_episode(engine)
    assert Counting.batches == [7, 7, 7, 7]  # as test_each_day_and_each_wave_is_one_batch


# ---------------------------------------------------------------------- store
def test_same_seed_same_events_and_the_store_summary(tmp_path):
    a = opinion(people(6), seed=3, graph="sbm", group_by="gender")
    b = opinion(people(6), seed=3, graph="sbm", group_by="gender")
    assert [e.to_row() for e in a.log] == [e.to_row() for e in b.log]
    cfg = compose("scenario=opinion", "backend=mock", "population=sampled", "population.n=10",
                  "scenario.n_agents=8", "scenario.ticks=2", "scenario.survey_every=1",
                  "episodes=2", "progress=false")
    run(cfg, tmp_path / "run")
    tables = load_run(tmp_path / "run")
    assert {"ticks", "groups", "stances", "survey"} <= set(tables.tables)
    out = OpinionScenario.summarize(tables)
    assert out["opinion"].height == 2 and out["opinion_ticks"].height == 4
    assert out["opinion_survey"]["n"].sum() == 2 * 2 * 8 * 3
