"""The endpoint pool: sticky and round-robin routing, failover, and its cache identity."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from simlab.backends.base import Backend, BackendError, ChatRequest, ChatResponse, Message
from simlab.backends.pool import EndpointPool, litellm_backend, rendezvous


class Replica(Backend):
    """A server that answers with its own name, or fails as a dead one does."""

    name = "replica"

    def __init__(self, label: str) -> None:
        self.label, self.down, self.seen = label, False, []

    @property
    def model_id(self) -> str:
        return "m"

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        self.seen.extend(r.tag for r in requests)
        if self.down:
            return [ChatResponse("", error="ConnectionRefusedError", transient=True)
                    for _ in requests]
        return [ChatResponse(self.label) for _ in requests]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ask(agent: str, episode: str = "ep00000") -> ChatRequest:
    return ChatRequest((Message("user", "hi"),), tag=agent, affinity=f"{episode}/{agent}")


def pool(n: int = 3, **kw) -> tuple[EndpointPool, list[Replica]]:
    reps = [Replica(f"r{i}") for i in range(n)]
    return EndpointPool(reps, [f"http://127.0.0.1:800{i}/v1" for i in range(n)], **kw), reps


def test_rendezvous_is_stable_and_moves_only_the_removed_names_keys() -> None:
    names = ["a", "b", "c"]
    keys = [f"ep/{i}" for i in range(300)]
    before = [names[rendezvous(k, names)] for k in keys]
    assert before == [names[rendezvous(k, names)] for k in keys]
    assert set(Counter(before).values()) and min(Counter(before).values()) > 70
    after = [["a", "c"][rendezvous(k, ["a", "c"])] for k in keys]
    assert all(x == y for x, y in zip(before, after, strict=True) if x != "b")


def test_sticky_sends_each_agent_to_one_replica_every_tick() -> None:
    p, _ = pool()
    agents = [f"a{i}" for i in range(12)]
    first = [r.text for r in p.generate([ask(a) for a in agents])]
    for _ in range(3):
        assert [r.text for r in p.generate([ask(a) for a in agents[::-1]])] == first[::-1]
    assert len(set(first)) > 1  # 12 agents did not all land on one replica
    assert sum(p.sent) == 48


def test_round_robin_spreads_requests_evenly() -> None:
    p, reps = pool(routing="round_robin")
    p.generate([ask(f"a{i}") for i in range(9)])
    assert [len(r.seen) for r in reps] == [3, 3, 3]


def test_a_dead_replica_is_taken_out_and_its_calls_move() -> None:
    clock = Clock()
    p, reps = pool(2, cooldown_s=30.0, clock=clock)
    agents = [f"a{i}" for i in range(8)]
    home = {a: r.text for a, r in zip(agents, p.generate([ask(a) for a in agents]), strict=True)}
    reps[0].down = True
    out = p.generate([ask(a) for a in agents])
    assert all(r.ok and r.text == "r1" for r in out)
    moved = [a for a in agents if home[a] == "r0"]
    assert p.moved == len(moved) > 0 and p.failed == [1, 0]
    reps[0].seen.clear()
    p.generate([ask(a) for a in agents])  # cooling down: r0 is not asked
    assert reps[0].seen == []
    reps[0].down, clock.now = False, 31.0  # back after the cooldown, with its own agents
    out = p.generate([ask(a) for a in agents])
    assert {a: r.text for a, r in zip(agents, out, strict=True)} == home


def test_every_replica_down_returns_a_transient_failure() -> None:
    p, reps = pool(2)
    for r in reps:
        r.down = True
    (out,) = p.generate([ask("a")])
    assert not out.ok and out.transient
    assert sorted(len(r.seen) for r in reps) == [1, 1]


def test_the_cache_identity_does_not_depend_on_the_replica_that_answered() -> None:
    a = litellm_backend(model="openai/m", endpoints=["http://127.0.0.1:1/v1",
                                                      "http://127.0.0.1:2/v1"])
    b = litellm_backend(model="openai/m", endpoints=["http://127.0.0.1:2/v1",
                                                      "http://127.0.0.1:1/v1"])
    assert isinstance(a, EndpointPool) and a.fingerprint() == b.fingerprint()
    assert a.describe()["pool"]["endpoints"] == ["http://127.0.0.1:1/v1",
                                                 "http://127.0.0.1:2/v1"]
    assert a.fingerprint() != litellm_backend(model="openai/m",
                                              api_base="http://127.0.0.1:1/v1").fingerprint()


@pytest.mark.parametrize(("kw", "field"), [
    ({"endpoints": ["http://x/v1"], "api_base": "http://y/v1"}, "not both"),
    ({"endpoints": ["http://x/v1", "http://x/v1"]}, "listed twice"),
    ({"endpoints": ["http://x/v1"], "routing": "random"}, "backend.routing"),
    ({"endpoints": ["http://x/v1"], "cooldown_s": -1}, "backend.cooldown_s"),
])
def test_bad_pool_settings_name_the_field(kw, field) -> None:
    with pytest.raises(BackendError, match=field):
        litellm_backend(model="openai/m", **kw)


@pytest.mark.embedded
def test_pool_of_two_llama_cpp_servers_keeps_agents_and_survives_a_dead_one(tmp_path) -> None:
    """Two real llama.cpp servers on 127.0.0.1: each agent's calls go to one of them,
    and when one is stopped (by its PID) its agents' calls are answered by the other."""
    from contextlib import ExitStack

    from servers.llama import llama_server

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with llama_server(tmp_path / "a", "--n_ctx", "1024") as url_a, ExitStack() as second:
        url_b = second.enter_context(llama_server(tmp_path / "b", "--n_ctx", "1024"))
        p = litellm_backend(model="openai/smollm2", endpoints=[url_a, url_b],
                            context_window=1024, timeout_s=30.0)
        assert isinstance(p, EndpointPool)
        agents = [f"a{i}" for i in range(6)]

        def tick(n: int) -> list[ChatResponse]:
            reqs = [ChatRequest((Message("user", f"Say hello to {a}, round {n}."),),
                                max_tokens=6, temperature=0.0, seed=n, tag=a,
                                affinity=f"ep00000/{a}") for a in agents]
            return p.generate(reqs)

        home = {a: p.route(ChatRequest((), tag=a, affinity=f"ep00000/{a}")) for a in agents}
        assert set(home.values()) == {0, 1}
        for n in range(2):
            assert all(r.ok and r.completion_tokens > 0 for r in tick(n))
        assert p.sent == [2 * list(home.values()).count(i) for i in (0, 1)]
        second.close()  # server b is stopped
        assert all(r.ok for r in tick(2))
        assert p.failed == [0, 1] and p.moved == list(home.values()).count(1)
        assert p.sent[0] == 6 + 2 * list(home.values()).count(0)
        p.close()
