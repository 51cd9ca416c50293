"""litellm's Router strategies over the pool's servers, against real local HTTP servers
(``tests/servers/fake_openai.py`` on 127.0.0.1)."""

from __future__ import annotations

import socket

import pytest
from servers.fake_openai import serve, stats

from simlab.backends.base import BackendError, ChatRequest, Message
from simlab.backends.litellm_router import RouterBackend
from simlab.backends.pool import litellm_backend


def asks(n: int) -> list[ChatRequest]:
    return [ChatRequest((Message("user", f"hello {i}"),), max_tokens=8, seed=i, tag=f"a{i}",
                        affinity=f"ep00000/a{i}") for i in range(n)]


def test_least_busy_spreads_calls_and_reads_the_key_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SIMLAB_TEST_POOL_KEY", "sk-pool-secret")
    with serve(latency_s=0.05) as a, serve(latency_s=0.05) as b:
        backend = litellm_backend(model="openai/fake", endpoints=[a, b], routing="least_busy",
                                  api_key_env="SIMLAB_TEST_POOL_KEY", context_window=4096)
        assert isinstance(backend, RouterBackend)
        replies = backend.generate(asks(16))
        assert all(r.ok and r.text for r in replies), [r.error for r in replies]
        got = {url: stats(url)["requests"] for url in (a, b)}
        assert sum(got.values()) == 16 and min(got.values()) >= 4, got  # both were used
        assert {k for url in (a, b) for k in stats(url)["keys"]} == {"sk-pool-secret"}
        assert backend.stats()["pool"] == {url: {"sent": n} for url, n in got.items()}
        shown = f"{backend.describe()} {backend.fingerprint()} {backend.deployments}"
        assert "sk-pool-secret" not in shown
        assert backend.fingerprint()["api_base"] == sorted([a, b])
        backend.close()


def test_a_dead_servers_calls_are_answered_by_the_other() -> None:
    """The Router retries a failed call at once (2 x servers times); a call that drew the
    dead server on every try is transient, and the retry wrapper asks again."""
    from simlab.backends.wrappers import wrap_backend

    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # a port nobody listens on: connection refused
    url_dead = f"http://127.0.0.1:{dead.getsockname()[1]}/v1"
    dead.close()
    with serve() as alive:
        inner = litellm_backend(model="openai/fake", endpoints=[url_dead, alive],
                                routing="simple_shuffle", context_window=4096,
                                timeout_s=5.0)
        backend = wrap_backend(inner, retry={"initial_s": 0.01, "max_attempts": 4,
                                             "seed": 1})
        replies = backend.generate(asks(24))
        assert all(r.ok and r.text.startswith("echo: hello") for r in replies), \
            [r.error for r in replies]
        assert stats(alive)["requests"] == 24  # each answered once, by the live server
        assert inner.stats()["pool"] == {url_dead: {"sent": 0}, alive: {"sent": 24}}
        backend.close()


@pytest.mark.parametrize(("routing", "cooldown", "field"), [
    ("fastest", 30.0, "backend.routing"),
    ("least_busy", -1.0, "backend.cooldown_s"),
])
def test_bad_router_settings_name_the_field(routing, cooldown, field) -> None:
    with pytest.raises(BackendError, match=field):
        litellm_backend(model="openai/m", endpoints=["http://127.0.0.1:9/v1"],
                        routing=routing, cooldown_s=cooldown)
