"""Schedule policies: who acts on each tick."""

from __future__ import annotations

import itertools

import pytest
from conftest import ToyConfig, ToyScenario, make_personas

from simlab.scheduler.policies import POLICIES, make_policy


def _scenario(n=3, edges=None, seed=0):
    return ToyScenario.create(ToyConfig(edges=edges), make_personas(n), episode_id="e", seed=seed)


def test_round_robin_cycles_in_participant_order():
    sc = _scenario(3)
    policy = make_policy("round_robin")
    assert [policy.select(sc, s) for s in range(5)] == [["p0"], ["p1"], ["p2"], ["p0"], ["p1"]]


def test_simultaneous_schedules_everyone():
    sc = _scenario(4)
    assert make_policy("simultaneous").select(sc, 0) == ["p0", "p1", "p2", "p3"]


def test_random_never_repeats_the_last_speaker_by_default_and_is_seeded():
    def picks(seed, **opts):
        sc = _scenario(3, seed=seed)
        policy = make_policy("random", **opts)
        out = []
        for s in range(60):
            (who,) = policy.select(sc, s)
            out.append(who)
            sc.last_speaker = who
        return out

    a = picks(7)
    assert a == picks(7)  # same seed, same schedule
    assert a != picks(8)
    assert all(x != y for x, y in itertools.pairwise(a))
    assert set(a) == {"p0", "p1", "p2"}
    b = picks(7, allow_repeat=True)
    assert any(x == y for x, y in itertools.pairwise(b))


def test_neighbours_picks_a_graph_neighbour_of_the_last_speaker():
    # star: p0 is the hub, p1..p3 are leaves that only hear p0.
    sc = _scenario(4, edges=[(0, 1), (0, 2), (0, 3)])
    policy = make_policy("neighbours")
    assert policy.select(sc, 0) == ["p0"]  # nobody spoke yet: first participant opens
    seen = set()
    for s in range(40):
        sc.last_speaker = "p0"
        (nxt,) = policy.select(sc, s)
        assert nxt in {"p1", "p2", "p3"}
        seen.add(nxt)
        sc.last_speaker = nxt
        assert policy.select(sc, s) == ["p0"]  # a leaf's only neighbour is the hub
    assert seen == {"p1", "p2", "p3"}


def test_unknown_policy_and_bad_options_name_the_problem():
    with pytest.raises(ValueError, match=r"schedule.name: unknown policy 'loudest'.*round_robin"):
        make_policy("loudest")
    with pytest.raises(ValueError, match="bad options for 'round_robin'"):
        make_policy("round_robin", allow_repeat=True)
    assert set(POLICIES) == {"round_robin", "random", "neighbours", "simultaneous"}
