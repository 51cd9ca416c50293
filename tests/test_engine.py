"""The tick engine on a dialogue: termination, failures, re-asks, repair, batching."""

from __future__ import annotations

import itertools
import json
from typing import ClassVar

import pytest
from conftest import ToyScenario, make_personas

from scenarios.dialogue import DialogueConfig, DialogueScenario
from simlab.backends.base import ChatResponse
from simlab.backends.mock import MockBackend
from simlab.events import FAILURE, UTTERANCE
from simlab.scheduler import TickEngine, make_policy, run_episode
from simlab.scheduler.settings import EngineConfig

_ENGINE_KEYS = ("max_reasks", "on_failure", "max_consecutive_failures")


def _split(kw):
    """Scenario keys -> DialogueConfig; engine keys -> EngineConfig."""
    engine = {k: kw.pop(k) for k in _ENGINE_KEYS if k in kw}
    return DialogueConfig(**kw), engine


def _dialogue(backend, seed=3, schedule=None, **kw):
    config, engine_kw = _split(kw)
    sc = DialogueScenario.create(config, make_personas(2), episode_id="ep0", seed=seed)
    engine = TickEngine(sc, backend, settings=EngineConfig(max_steps=60, **engine_kw),
                        schedule=schedule)
    state = run_episode(engine)
    return sc, engine, state


def _said(sc):
    return [e for e in sc.log if e.kind == UTTERANCE]


@pytest.mark.parametrize(("close_after", "turns", "reason"), [
    (3, 6, "natural_close"),   # both say goodbye on their 3rd turn = turns 5 and 6
    (2, 6, "natural_close"),   # goodbyes at turns 3-4 are too early (min_turns=6)
    (4, 8, "natural_close"),
    (None, 10, "max_turns"),   # never closes: capped
])
def test_termination_by_closing_window_or_cap(close_after, turns, reason):
    sc, _, state = _dialogue(MockBackend(close_after=close_after), min_turns=6, max_turns=10)
    assert (sc.turns, sc.termination_reason, state["reason"]) == (turns, reason, reason)
    assert len(_said(sc)) == turns


def test_judge_termination_asks_the_backend_and_records_its_verdict():
    class Judge(MockBackend):
        def generate(self, requests):
            out = []
            for r in requests:
                if r.tag == "closing-judge":
                    ended = len(self.calls) >= 7
                    self.calls.append(r)
                    text = '{"ended": true}' if ended else '{"ended": false}'
                    out.append(ChatResponse(text=text, parsed={"ended": ended}, model="judge"))
                else:
                    out.extend(super().generate([r]))
            return out

    sc, engine, _ = _dialogue(Judge(), termination="judge", min_turns=6, max_turns=10)
    judged = [e for e in sc.log if e.kind == "judge"]
    assert sc.termination_reason == "natural_close"
    assert sc.turns == 7  # judge said no after turn 6 (6 dialogue calls), yes after turn 7
    assert [e.content for e in judged] == ['{"ended": false}', '{"ended": true}']
    assert all(e.audience == () for e in judged)  # nobody perceives the judge
    for key in sc.participants:
        assert all("ended" not in m.content for m in engine.projector.view(key, sc.log))


def test_empty_reply_is_reasked_then_recorded():
    sc, _, _ = _dialogue(MockBackend(replies=["   ", "Hello Ben, nice to meet you."]),
                      min_turns=1, max_turns=1)
    (first,) = _said(sc)
    assert first.content == "Hello Ben, nice to meet you."
    assert first.attempts == 2


def test_unusable_reply_becomes_a_failure_when_reasks_run_out():
    sc, _, _ = _dialogue(MockBackend(replies=["<|im_end|>"]), min_turns=1, max_turns=1,
                      max_reasks=0)
    fail = next(e for e in sc.log if e.kind == FAILURE)
    assert fail.content.startswith("empty reply after repair")
    assert fail.audience == ()


def test_reply_is_repaired_not_rejected():
    sc = DialogueScenario.create(DialogueConfig(max_turns=1, min_turns=1), make_personas(2),
                                 episode_id="r", seed=3)
    me, you = (sc.by_key[k].name for k in sc.participants)
    reply = f"{me}: Hi there! I need advice.\n{you}: Sure, what is it?"
    engine = TickEngine(sc, MockBackend(replies=[reply]))
    run_episode(engine)
    assert _said(sc)[0].content == "Hi there! I need advice."
    # the verbatim reply is kept for analysis (role confusion), never shown to anyone
    assert json.loads(_said(sc)[0].data) == {"raw": reply}
    assert all(reply not in m.content for k in sc.participants
               for m in engine.projector.view(k, sc.log))


def test_raw_reply_kept_only_where_the_event_does_not_record_it():
    sc, _, _ = _dialogue(MockBackend(replies=["Hello Ben, nice to meet you.", "<|im_end|>"]),
                      min_turns=1, max_turns=2, max_reasks=0)
    said, fail = _said(sc)[0], next(e for e in sc.log if e.kind == FAILURE)
    assert said.data == ""  # unrepaired: the content is the reply
    assert json.loads(fail.data) == {"raw": "<|im_end|>"}
    sc, _, _ = _dialogue(MockBackend(fail_every=1), min_turns=1, max_turns=1,
                      max_consecutive_failures=1)
    assert next(e for e in sc.log if e.kind == FAILURE).data == ""  # no reply to keep


def test_backend_failures_are_recorded_and_the_episode_goes_on():
    sc, _, _ = _dialogue(MockBackend(fail_every=3), min_turns=6, max_turns=6)
    fails = [e for e in sc.log if e.kind == FAILURE]
    assert sc.termination_reason == "max_turns" and sc.turns == 6
    assert [f.content for f in fails] == [
        "backend error: mock failure on call 3", "backend error: mock failure on call 6",
    ]  # 8 calls: 6 turns and 2 failures


def test_failure_policy_stop_ends_the_episode_with_the_reason():
    sc, _, _ = _dialogue(MockBackend(fail_every=3), on_failure="stop")
    assert sc.termination_reason == "failure: backend error: mock failure on call 3"
    assert sc.turns == 2


def test_a_dead_backend_stops_after_consecutive_failures():
    sc, _, _ = _dialogue(MockBackend(fail_every=1), max_consecutive_failures=3)
    assert (sc.termination_reason, sc.turns) == ("too_many_failures", 0)
    assert sum(e.kind == FAILURE for e in sc.log) == 3


def test_a_tick_is_one_batch_and_simultaneous_agents_share_it():
    batches = []

    class Recording(MockBackend):
        def generate(self, requests):
            batches.append(len(requests))
            return super().generate(requests)

    sc, _, _ = _dialogue(Recording(), schedule=make_policy("simultaneous"), min_turns=4,
                      max_turns=4)
    assert batches == [2, 2]
    first_tick = [e for e in _said(sc) if e.step == 0]
    assert len(first_tick) == 2  # both spoke on tick 0, neither saw the other's reply


def test_group_dialogue_with_neighbour_schedule_respects_the_graph():
    sc = DialogueScenario.create(
        DialogueConfig(mode="group", group_size=4, graph="star", min_turns=8, max_turns=8),
        make_personas(4), episode_id="g", seed=5)
    run_episode(TickEngine(sc, MockBackend(), settings=EngineConfig(max_steps=50),
                           schedule=make_policy("neighbours")))
    hub = sc.participants[0]
    speakers = [e.speaker for e in _said(sc)]
    assert len(speakers) == 8 and speakers[0] == hub
    assert all((a == hub) != (b == hub) for a, b in itertools.pairwise(speakers))
    for e in _said(sc):
        expected = tuple(k for k in sc.participants if k != hub) if e.speaker == hub else (hub,)
        assert e.audience == expected


def test_mesa_style_step_drives_the_same_engine():
    sc = DialogueScenario.create(DialogueConfig(max_turns=6), make_personas(2),
                                 episode_id="m", seed=3)
    sc.attach(MockBackend())
    while sc.running:
        sc.step()
    assert sc.turns == 6 and sc.steps == 6 and sc.termination_reason == "max_turns"


def test_scenario_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"scenario.mode"):
        DialogueConfig(mode="trio")
    with pytest.raises(ValueError, match=r"scenario.min_turns/max_turns"):
        DialogueConfig(min_turns=8, max_turns=4)
    with pytest.raises(ValueError, match="population: pair dialogue needs 2"):
        DialogueScenario.create(DialogueConfig(), make_personas(1), episode_id="x")
    with pytest.raises(ValueError, match=r"scenario.roles\[0\]"):
        DialogueConfig(roles=[{"instructions": "x"}])


class _Structured(DialogueScenario):
    """A dialogue whose turns are structured actions, to exercise schema re-asks."""

    SCHEMA: ClassVar[dict] = {"type": "object", "properties": {"say": {"type": "string"}},
                              "required": ["say"]}

    def request_for(self, agent, messages, seed):
        from simlab.backends.base import ChatRequest

        return ChatRequest(messages=messages, seed=seed, tag=agent.key, json_schema=self.SCHEMA)

    def interpret(self, agent, response):
        from simlab.actions import Interpretation

        return Interpretation(True, response.parsed["say"], data=response.parsed)


def test_invalid_structured_reply_is_reasked_with_the_error_then_recorded():
    backend = MockBackend(replies=["not json", '{"say": "hello"}'])
    sc = _Structured.create(DialogueConfig(min_turns=1, max_turns=1), make_personas(2),
                            episode_id="s", seed=1)
    run_episode(TickEngine(sc, backend))
    assert _said(sc)[0].content == "hello" and _said(sc)[0].attempts == 2
    reask = backend.calls[1].messages[-1]
    assert reask.role == "user" and "invalid JSON" in reask.content

    backend = MockBackend(replies=["nope", '{"wrong": 1}'])
    sc = _Structured.create(DialogueConfig(min_turns=1, max_turns=1), make_personas(2),
                            episode_id="s", seed=1)
    run_episode(TickEngine(sc, backend, settings=EngineConfig(max_reasks=1, on_failure="stop")))
    (fail,) = [e for e in sc.log if e.kind == FAILURE]
    assert fail.content.startswith("invalid structured reply: schema")
    assert fail.attempts == 2 and sc.termination_reason.startswith("failure: invalid")


class _HalfRuleScenario(ToyScenario):
    """Even-numbered agents answer by rule; the others ask the model."""

    def local_response(self, agent, request):
        if self.order[agent.key] % 2 == 0:
            return ChatResponse(text=f"rule says hi from {agent.name}", model="rule:echo")
        return None


def test_local_responses_skip_the_backend_and_flow_through_resolve():
    class Counting(MockBackend):
        batches: ClassVar[list[int]] = []

        def generate(self, requests):
            self.batches.append(len(requests))
            return super().generate(requests)

    sc = _HalfRuleScenario.create(None, make_personas(4), episode_id="e", seed=1)
    backend = Counting()
    TickEngine(sc, backend, settings=EngineConfig(max_steps=2),
               schedule=make_policy("simultaneous")).tick(0)
    utterances = [e for e in sc.log if e.kind == UTTERANCE]
    assert len(utterances) == 4
    assert Counting.batches == [2]  # only the two model-driven agents were sent
    rule = [e for e in utterances if e.model == "rule:echo"]
    assert [e.speaker for e in rule] == [sc.participants[0], sc.participants[2]]
    assert rule[0].content.startswith("rule says hi")
