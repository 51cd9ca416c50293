"""Context budgets and memory policies: exact views on hand-built logs, the budget's
arithmetic, the ``full`` policy's error, and every scenario driven far past a small
declared window without one request over it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from conftest import compose

from simlab.backends.base import ChatRequest, Message, estimate_tokens
from simlab.backends.mock import MockBackend
from simlab.config import memory_config
from simlab.context.budget import Budget, ContextOverflow, budget_for, message_overhead
from simlab.context.memory import OMITTED, FullMemory, MemoryConfig, Note, WindowMemory
from simlab.runner import RunFailed, run
from simlab.store import load_run


class Words:
    """A counter whose tokens are words, with no template overhead (as the mock's)."""

    def count_text(self, text: str) -> int:
        return len(text.split())

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(m.content.split()) for m in messages)


def S(text: str) -> Message:  # the roles, as short as in the expected views
    return Message("system", text)


def U(text: str) -> Message:
    return Message("user", text)


def A(text: str) -> Message:
    return Message("assistant", text)


# 2 + 3 + 2 + 4 + 1 + 3 = 15 words; OMITTED is 5 words
VIEW = (S("s1 s2"), U("Tom: a b"), A("c d"), U("Tom: e f g"), A("h"), U("Tom: i j"))


def budget(prompt: int) -> Budget:
    return Budget(window=prompt + 10, max_tokens=6, margin=4)


# ------------------------------------------------------------------ the arithmetic
def test_budget_is_window_minus_reply_minus_margin():
    b = budget_for(2048, 96, 32)
    assert b == Budget(2048, 96, 32) and b.prompt == 1920
    assert b.describe() == ("context window 2048 - max_tokens 96 - margin 32 = "
                            "1920 prompt tokens")
    assert budget_for(None, 96, 32) is None  # no declared window: nothing to fit


def test_a_budget_with_no_room_names_the_agent_and_the_sizes():
    with pytest.raises(ContextOverflow, match=r"agent 'maya' at step 3: no room for a prompt "
                       r"\(context window 100 - max_tokens 90 - margin 10 = 0 prompt"):
        budget_for(100, 90, 10, agent="maya", step=3)


def test_estimate_and_template_overhead():
    assert estimate_tokens("") == 0 and estimate_tokens("abcdefg") == 3  # ceil(7 / 3)
    assert message_overhead(Words()) == 0

    class Templated(Words):  # 3 tokens around each message, 2 for the reply's opening
        def count_tokens(self, messages):
            return sum(len(m.content.split()) + 3 for m in messages) + 2

    assert message_overhead(Templated()) == 3


def test_backends_count_what_they_send():
    mock = MockBackend(context_window=50)
    messages = (S("a b"), U("c d e"))
    assert mock.context_window == 50 and mock.count_tokens(messages) == 5
    reply = mock.generate([ChatRequest(messages=messages, max_tokens=4)])[0]
    assert reply.ok and reply.prompt_tokens == 5
    over = mock.generate([ChatRequest(messages=messages, max_tokens=46)])[0]
    assert over.error == "Requested tokens (5 + 46) exceed context window of 50"
    assert MockBackend().context_window is None


# ------------------------------------------------------------------------- full
def test_full_keeps_the_view_and_fails_fast_over_budget():
    memory = FullMemory(MemoryConfig(policy="full"), Words())
    assert memory.fit("maya", 0, VIEW, budget(15)) is VIEW
    with pytest.raises(ContextOverflow) as err:
        memory.fit("maya", 7, VIEW, budget(14))
    assert str(err.value).startswith(
        "agent 'maya' at step 7: the prompt is 15 tokens, over the budget of 14 "
        "(context window 24 - max_tokens 6 - margin 4 = 14 prompt tokens); memory=full")


# ----------------------------------------------------------------------- window
def test_window_keeps_a_view_that_fits_untouched():
    memory = WindowMemory(MemoryConfig(), Words())
    assert memory.fit("maya", 0, VIEW, budget(15)) is VIEW


def test_window_trims_to_refill_then_appends_to_a_stable_prefix():
    memory = WindowMemory(MemoryConfig(refill=1.0), Words())
    # 14 < 15: keep the system (2) + note (5) + newest messages while they fit 14:
    # "Tom: i j" (3) -> 10, "h" (1) -> 11, "Tom: e f g" (4) would be 15: cut before it.
    # The first kept message is the agent's own, so the note is its own user message.
    first = memory.fit("maya", 1, VIEW, budget(14))
    assert first == (S("s1 s2"), U(OMITTED), A("h"), U("Tom: i j"))
    # two more messages (3 words) still fit: the prefix is unchanged, only appended to
    longer = (*VIEW, A("k"), U("Tom: l"))
    second = memory.fit("maya", 2, longer, budget(14))
    assert second == (*first, A("k"), U("Tom: l"))
    # one more overflows (16): trim again. 7 + "m n" 2 + "Tom: l" 2 + "k" 1 = 12; with
    # "Tom: i j" (3) it would be 15, so the window now starts at "k".
    longest = (*longer, A("m n"))
    third = memory.fit("maya", 3, longest, budget(14))
    assert third == (S("s1 s2"), U(OMITTED), A("k"), U("Tom: l"), A("m n"))


def test_window_refill_leaves_headroom_after_a_trim():
    memory = WindowMemory(MemoryConfig(refill=0.5), Words())
    # target round(14 * 0.5) = 7 = system + note: only the newest message is kept
    assert memory.fit("maya", 1, VIEW, budget(14)) == (S("s1 s2"), U(f"{OMITTED}\nTom: i j"))


def test_window_state_is_per_agent():
    memory = WindowMemory(MemoryConfig(refill=1.0), Words())
    memory.fit("maya", 1, VIEW, budget(14))
    assert memory.fit("tom", 1, VIEW, budget(15)) is VIEW


def test_window_cuts_an_oversized_newest_message_to_its_newest_lines():
    memory = WindowMemory(MemoryConfig(), Words())
    view = (S("s"), A("x"), U("Tom: a b c\nAnn: d e\nTom: f"))  # newest message: 9 words
    # budget 10: system 1 + note 5 + "Tom: f" 2 + "Ann: d e" 3 = 11 > 10: one line only
    assert memory.fit("maya", 4, view, budget(10)) == (S("s"), U(f"{OMITTED}\nTom: f"))


def test_window_names_a_system_prompt_that_cannot_fit():
    memory = WindowMemory(MemoryConfig(), Words())
    with pytest.raises(ContextOverflow, match=r"agent 'maya' at step 2: the prompt is 6 tokens.*"
                       r"the system prompt alone does not fit"):
        memory.fit("maya", 2, (S("one two three four five six"), U("Tom: hi")), budget(5))


def test_memory_config_checks_and_roles():
    config = MemoryConfig(policy="window", roles={"planner": "full"})
    assert config.policy_for("planner") == "full" and config.policy_for("worker") == "window"
    with pytest.raises(ValueError, match=r"memory\.roles\.planner"):
        MemoryConfig(roles={"planner": "everything"})
    with pytest.raises(ValueError, match=r"memory\.margin: must be >= 0, got -1"):
        MemoryConfig(margin=-1)
    with pytest.raises(ValueError, match=r"memory.refill: must be in \[0.1, 1\], got 0.0"):
        MemoryConfig(refill=0.0)


# ------------------------------------------------------- scenarios past the window
LONG = {
    "dialogue": ["scenario.min_turns=60", "scenario.max_turns=60"],
    "opinion": ["scenario.ticks=40", "scenario.n_agents=8"],
    "economy": ["scenario.ticks=40", "scenario.n_workers=6", "scenario.planner=llm"],
    "auction": ["scenario.n_items=3", "scenario.max_rounds=12"],
}
WINDOW = 360


class Watching(MockBackend):
    """The mock, keeping the largest prompt + max_tokens it was sent."""

    largest = 0

    def generate(self, requests):
        for r in requests:
            Watching.largest = max(Watching.largest, self.count_tokens(r.messages) + r.max_tokens)
        return super().generate(requests)


def _long(scenario: str, *extra: str) -> list[str]:
    return [f"scenario={scenario}", "backend=mock", "backend._target_=test_memory.Watching",
            "episodes=1", "progress=false", *LONG[scenario], *extra]


@pytest.mark.parametrize("policy", ["window", "summary", "retrieval"])
@pytest.mark.parametrize("scenario", sorted(LONG))
def test_no_request_exceeds_the_window_in_any_scenario(scenario, policy, tmp_path):
    Watching.largest = 0
    run(compose(*_long(scenario, f"backend.context_window={WINDOW}", f"memory={policy}")),
        tmp_path / "run")
    events = load_run(tmp_path / "run").events
    assert events.filter(events["kind"] == "failure").height == 0
    assert 0 < Watching.largest <= WINDOW
    memory = events.filter(events["kind"] == "memory")
    if policy == "summary":  # summaries were written, each seen by its agent alone
        assert memory.height > 0
        assert all(list(a) == [s] for a, s in zip(memory["audience"], memory["speaker"],
                                                   strict=True))
    else:
        assert memory.height == 0


@pytest.mark.parametrize("scenario", sorted(LONG))
def test_the_long_runs_do_go_past_the_window(scenario, tmp_path):
    """Without a window the same runs send longer prompts: the test above is not vacuous."""
    Watching.largest = 0
    run(compose(*_long(scenario)), tmp_path / "open")
    assert Watching.largest > WINDOW


def test_full_policy_stops_the_run_naming_agent_and_step(tmp_path):
    cfg = compose("scenario=opinion", "backend=mock", f"backend.context_window={WINDOW}",
                  "memory=full", "episodes=1", "progress=false", *LONG["opinion"])
    with pytest.raises(RunFailed, match=r"context overflow: agent '[\w-]+' at step \d+: "
                       r"the prompt is \d+ tokens, over the budget of 248"):
        run(cfg, tmp_path / "run")


@pytest.mark.parametrize("policy", ["window", "summary", "retrieval"])
def test_memory_runs_are_deterministic(policy, tmp_path):
    overrides = ["scenario=opinion", "backend=mock", f"backend.context_window={WINDOW}",
                 "episodes=1", "progress=false", f"memory={policy}", *LONG["opinion"]]
    for name in ("a", "b"):
        run(compose(*overrides), tmp_path / name)
    a, b = (load_run(tmp_path / n).events.drop("latency_s") for n in ("a", "b"))
    assert a.equals(b)


# ---------------------------------------------------------------- summary, retrieval
def _log_and_projector():
    from simlab.context import EgocentricProjector, ProjectionContext
    from simlab.events import EventLog

    log = EventLog("ep")
    log.append(step=0, speaker="env", audience=("me", "tom"), kind="narration",
               content="The bakery on Main Street closes")
    log.append(step=1, speaker="tom", audience=("me",), kind="utterance",
               content="I love the new bakery bread")
    log.append(step=2, speaker="me", audience=("tom",), kind="utterance",
               content="The weather is nice")
    projector = EgocentricProjector(ProjectionContext(
        system_prompts={"me": "You are Me.", "tom": "You are Tom."},
        names={"me": "Me", "tom": "Tom"}))
    return log, projector


def test_bm25_by_hand():
    from simlab.context.relevance import LexicalIndex, terms

    assert terms("Tom: I love the new bakery bread") == ["tom", "love", "new", "bakery",
                                                          "bread"]
    index = LexicalIndex()
    for seq, text in enumerate(["[Narrator] The bakery on Main Street closes",
                                "Tom: I love the new bakery bread", "The weather is nice"]):
        index.add(seq, text)
    # "bread" is in 1 of 3 documents: idf = ln(1 + 2.5 / 1.5) = ln(8/3); document 1 has
    # 5 terms against a mean of 12/3 = 4: tf' = 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 5/4))
    expected = math.log(8 / 3) * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 5 / 4))
    assert index.scores("Where can we buy bread?", [0, 1, 2]) == \
        pytest.approx([0.0, expected, 0.0], abs=1e-12)
    assert expected == pytest.approx(0.889824, abs=1e-6)


def test_retrieval_scores_by_hand():
    from simlab.context.retrieval import RetrievalMemory

    log, projector = _log_and_projector()
    memory = RetrievalMemory(MemoryConfig(policy="retrieval"), Words())
    memory.bind(projector, lambda: log)
    # at step 4, candidates seq 0-2. Normalised (min-max) terms:
    #   recency 0.99^(4-step): 0.99^4, 0.99^3, 0.99^2 -> 0, 0.0099/0.0199, 1
    #   importance (narration 1.0, others 0.6, own 0.3) -> 1, 3/7, 0
    #   relevance to "bread" (BM25) -> 0, 1, 0
    ranked = memory.ranked("me", 4, 3, "Where can we buy bread?")
    assert [seq for _, seq in ranked] == [1, 2, 0]  # ties (1.0) go to the newer event
    assert [score for score, _ in ranked] == pytest.approx(
        [0.0099 / 0.0199 + 3 / 7 + 1, 1.0, 1.0], abs=1e-12)
    # room for the header (4 words + 1) and two lines (10 + 1, 8 + 1): the best two, in
    # the order they happened
    lines = memory.recall("me", 4, 3, "Where can we buy bread?", room=5 + 11 + 9)
    assert lines == ["- (tick 1) Tom: I love the new bakery bread",
                     "- (tick 2) You: The weather is nice"]


def test_retrieval_view_keeps_the_newest_and_recalls_the_rest():
    from simlab.context.retrieval import HEADER, RetrievalMemory

    log, projector = _log_and_projector()
    log.append(step=2, speaker="me", audience=("tom",), kind="utterance",
               content="I walked my dog in the park for a very long time")
    log.append(step=3, speaker="tom", audience=("me",), kind="utterance",
               content="Shall we buy bread together?")
    view = projector.view("me", log)
    assert view == (S("You are Me."), U("[Narrator] The bakery on Main Street closes\n"
                                        "Tom: I love the new bakery bread"),
                    A("The weather is nice\nI walked my dog in the park for a very long time"),
                    U("Tom: Shall we buy bread together?"))
    assert projector.message_seqs("me") == [-1, 0, 2, 4]
    memory = RetrievalMemory(MemoryConfig(policy="retrieval", retrieval_share=0.5), Words())
    memory.bind(projector, lambda: log)
    # 3 + 14 + 16 + 6 = 39 words. Budget 30: history room 27, half (14) for recall; the
    # window keeps the newest message and its note (14 <= 16). Recall has 30 - 14 = 16:
    # the header (5) and the best event, seq 1 (11); the next best (seq 3, 14) won't fit.
    fitted = memory.fit("me", 4, view, budget(30))
    recalled = "- (tick 1) Tom: I love the new bakery bread"
    assert fitted == (S("You are Me."), U(
        f"{HEADER}\n{recalled}\n{OMITTED}\nTom: Shall we buy bread together?"))
    assert Words().count_tokens(fitted) == 28


def test_summary_asks_for_what_falls_out_then_stands_in_for_it():
    from simlab.backends.base import ChatResponse
    from simlab.context.summary import HEADER, SummaryMemory

    memory = SummaryMemory(MemoryConfig(policy="summary", summary_tokens=8, refill=1.0),
                           Words())
    assert memory.prepare("maya", 0, VIEW, budget(15), lambda: 1) == []  # it fits
    # a longer view (26 words) is over 24: cut where system 2 + reserve (header 6 + 8)
    # + the newest 5 = 21 leaves no room for "k l m n o p": all but the newest is folded
    long = (*VIEW, A("k l m n o p"), U("Tom: q r s t"))
    wide = Budget(window=124, max_tokens=96, margin=4)  # prompt 24; the summary's: 112
    [request] = memory.prepare("maya", 5, long, wide, lambda: 42)
    assert request.seed == 42 and request.max_tokens == 8 and request.tag == "maya:summary"
    assert request.messages[0] == S("s1 s2")
    assert request.messages[1].content.endswith(
        "Tom: a b\nYou: c d\nTom: e f g\nYou: h\nTom: i j\nYou: k l m n o p")
    assert memory.absorb("maya", 5, request, ChatResponse(text="  Tom likes  a and b. ")) \
        == Note("Tom likes a and b.")
    fitted = memory.fit("maya", 5, long, wide)
    assert fitted == (S("s1 s2"), U(f"{HEADER}\nTom likes a and b.\nTom: q r s t"))
    # a failed summary keeps the previous one and cuts as window does
    assert memory.absorb("maya", 6, request, ChatResponse(text="", error="boom")) is None


def test_a_scenario_chooses_its_memory_default_and_the_command_line_wins():
    from hydra.core.config_store import ConfigStore

    from simlab.config import _store_scenario
    from simlab.registry import scenario_specs

    dialogue = scenario_specs()["dialogue"]
    spec = type(dialogue)("remembering", dialogue.cls, dialogue.config,
                          memory={"policy": "summary", "roles": {"client": "full"}})
    compose("backend=mock")  # registers the built-in configs first
    _store_scenario(ConfigStore.instance(), spec)
    chosen = memory_config(compose("scenario=remembering", "backend=mock"))
    assert (chosen.policy, chosen.roles) == ("summary", {"client": "full"})
    tuned = memory_config(compose("scenario=remembering", "backend=mock",
                                  "memory.summary_tokens=40"))
    assert (tuned.policy, tuned.summary_tokens) == ("summary", 40)
    assert memory_config(compose("scenario=remembering", "backend=mock",
                                 "memory=window")).policy == "window"
    with pytest.raises(ValueError, match=r"memory\.policy"):
        _store_scenario(ConfigStore.instance(), type(dialogue)(
            "forgetful", dialogue.cls, dialogue.config, memory={"policy": "never"}))
