"""LiteLLMBackend against a local fake OpenAI server (offline) and a real llama.cpp server.

Both transports run the same checks: ``litellm`` (litellm.acompletion) and ``direct``
(aiohttp, what ``auto`` picks for an OpenAI-compatible ``api_base``).
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from servers.fake_openai import serve, stats
from servers.llama import free_port, llama_server

from simlab.backends.base import BackendError, ChatRequest, Message
from simlab.backends.litellm_adapter import import_litellm
from simlab.backends.litellm_backend import LiteLLMBackend
from simlab.backends.ratelimit import RateLimiter, TokenBucket, estimate_tokens
from simlab.backends.schema import example_instance

TRANSPORTS = ("direct", "litellm")
ROOT = Path(__file__).resolve().parents[1]


def ask(text: str, **kw) -> ChatRequest:
    return ChatRequest(messages=(Message("system", "Be brief."), Message("user", text)), **kw)


@pytest.fixture(scope="module")
def fake():
    with serve(latency_s=0.0) as url:
        yield url


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_text_tokens_and_order(fake, transport):
    with LiteLLMBackend("openai/fake", api_base=fake, transport=transport) as backend:
        assert backend.transport == transport
        out = backend.generate([ask(f"hello there {i}", seed=i) for i in range(3)])
    assert [r.text for r in out] == [f"echo: hello there {i}" for i in range(3)]
    first = out[0]
    assert (first.prompt_tokens, first.completion_tokens) == (5, 4)  # word counts
    assert (first.finish_reason, first.model, first.error) == ("stop", "openai/fake", "")
    assert first.cost_usd == 0.0 and not first.transient and first.latency_s > 0
    cut = LiteLLMBackend("openai/fake", api_base=fake, transport=transport)
    with cut:
        short = cut.generate([ask("one two three four", max_tokens=2)])[0]
    assert (short.text, short.finish_reason) == ("echo: one", "length")


def test_auto_transport_and_empty_batch(fake):
    with LiteLLMBackend("hosted_vllm/m", api_base=fake) as local:
        assert local.transport == "direct" and local.generate([]) == []
    with LiteLLMBackend("anthropic/claude-x", api_base=fake) as other:
        assert other.transport == "litellm"
    with pytest.raises(BackendError, match="direct with an api_base"):
        LiteLLMBackend("openai/x", transport="direct")
    with pytest.raises(BackendError, match="max_in_flight"):
        LiteLLMBackend("openai/x", max_in_flight=0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_batch_runs_concurrently_under_the_cap(transport):
    with serve(latency_s=0.05) as url:
        with LiteLLMBackend("openai/fake", api_base=url, max_in_flight=8,
                            transport=transport) as backend:
            out = backend.generate([ask(f"n {i}") for i in range(50)])
        st = stats(url)
    assert [r.text for r in out] == [f"echo: n {i}" for i in range(50)]
    assert st["requests"] == 50
    assert st["peak_concurrency"] == 8


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rpm_limit_spaces_requests(transport):
    # rpm 600 = 10/s with a burst of one second's worth: 10 at once, then one per 0.1 s.
    with serve() as url:
        with LiteLLMBackend("openai/fake", api_base=url, rpm=600,
                            transport=transport) as backend:
            backend.generate([ask("warm")])  # spends one token; refills within 0.1 s
            time.sleep(0.15)
            stats(url, reset=True)
            out = backend.generate([ask(f"n {i}") for i in range(13)])
        arrivals = stats(url)["arrival_s"]
    assert all(r.ok for r in out)
    assert len(arrivals) == 13
    # The bucket was full when the stats were reset, so by time t at most 10 + 10 t
    # requests can have left: request 10 + k arrives no sooner than k × 0.1 s.
    for k in (1, 2, 3):
        assert arrivals[9 + k] >= 0.1 * k - 1e-4, arrivals
    assert arrivals[12] < 0.6  # and the limiter does not over-throttle


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_schema_request_is_parsed_and_validated(fake, transport):
    schema = {"type": "object", "properties": {
        "action": {"enum": ["bid", "pass"]}, "amount": {"type": "integer", "minimum": 0,
                                                        "maximum": 9}}, "required": ["action"]}
    with LiteLLMBackend("openai/fake", api_base=fake, transport=transport) as backend:
        good, bad = backend.generate([
            ask("act", seed=11, json_schema=schema),
            # the server omits "why" (example instances hold only declared properties)
            ask("act", seed=11, json_schema={**schema, "required": ["action", "why"]}),
        ])
    assert good.ok and good.parsed == example_instance(schema, random.Random(11))
    assert json.loads(good.text) == good.parsed
    assert bad.error == "schema: $: missing required property 'why'"
    assert not bad.transient and bad.parsed is None and bad.text == good.text


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("fault", "transient"), [
    ("429", True), ("500", True), ("timeout", True), ("malformed", True),
    ("400", False), ("401", False),
])
def test_error_classification(transport, fault, transient):
    with serve(fault_rate=1.0, faults=(fault,), hang_s=3.0) as url:
        with LiteLLMBackend("openai/fake", api_base=url, timeout_s=0.5,
                            transport=transport) as backend:
            (resp,) = backend.generate([ask("hi")])
        st = stats(url)
    assert st["requests"] == 1 and st["faults"][fault] == 1  # no hidden retries
    assert not resp.ok and resp.text == "" and resp.transient is transient
    if fault == "timeout":
        assert 0.4 < resp.latency_s < 2.5
    elif fault in ("400", "401", "429", "500"):
        assert fault in resp.error


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_refused_is_transient(transport):
    port = free_port()  # closed again at once: nobody listens
    with LiteLLMBackend("openai/fake", api_base=f"http://127.0.0.1:{port}/v1",
                        timeout_s=2, transport=transport) as backend:
        (resp,) = backend.generate([ask("hi")])
    assert resp.error and resp.transient


def test_api_key_env_unset_names_the_variable(monkeypatch):
    monkeypatch.delenv("SIMLAB_TEST_KEY", raising=False)
    with pytest.raises(BackendError, match="SIMLAB_TEST_KEY is not set"):
        LiteLLMBackend("openai/gpt-4o-mini", api_key_env="SIMLAB_TEST_KEY")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_key_is_sent_but_never_described(fake, monkeypatch, transport):
    monkeypatch.setenv("SIMLAB_TEST_KEY", "sk-test-secret-4242")
    with LiteLLMBackend("openai/fake", api_base=fake, api_key_env="SIMLAB_TEST_KEY",
                        extra={"api_key": "sk-inline", "user": "u1"},
                        transport=transport) as backend:
        described = backend.describe()
        assert backend.generate([ask("hi")])[0].ok
    text = json.dumps(described)
    assert "sk-test-secret" not in text and "sk-inline" not in text
    assert described["api_key_env"] == "SIMLAB_TEST_KEY"
    assert described["extra"] == {"api_key": "***", "user": "u1"}
    assert (described["backend"], described["model"]) == ("litellm", "openai/fake")
    assert "sk-test-secret-4242" in stats(fake)["keys"]


def test_key_with_a_line_break_is_an_error_not_a_header(fake, monkeypatch):
    monkeypatch.setenv("SIMLAB_TEST_KEY", "sk-a\r\nX-Injected: 1")
    with LiteLLMBackend("openai/fake", api_base=fake, api_key_env="SIMLAB_TEST_KEY") as backend:
        before = stats(fake)["requests"]
        out = backend.generate([ask("hi"), ask("ho")])
    assert [r.error for r in out] == [
        "backend.api_key_env: the value of SIMLAB_TEST_KEY has a line break"] * 2
    assert not any(r.transient for r in out) and stats(fake)["requests"] == before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cost_from_litellm_price_table(fake, transport):
    litellm = import_litellm()  # offline, as the backend imports it
    price = litellm.model_cost["gpt-4o-mini"]
    with LiteLLMBackend("openai/gpt-4o-mini", api_base=fake, transport=transport) as backend:
        (resp,) = backend.generate([ask("price me")])
    expected = (resp.prompt_tokens * price["input_cost_per_token"]
                + resp.completion_tokens * price["output_cost_per_token"])
    assert (resp.prompt_tokens, resp.completion_tokens) == (4, 3)
    assert resp.cost_usd == pytest.approx(expected, rel=1e-9) and expected > 0


# ----------------------------------------------------------------- rate limiter units
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_spacing_on_a_fake_clock():
    clock = FakeClock()
    bucket = TokenBucket.per_minute(120, clock=clock, sleep=clock.sleep)  # 2/s, burst 2

    async def five() -> list[float]:
        return [await bucket.acquire() for _ in range(5)]

    assert asyncio.run(five()) == [0.0, 0.0, 0.5, 0.5, 0.5]
    assert clock.now == 1.5


def test_token_bucket_debt_and_refund():
    clock = FakeClock()
    bucket = TokenBucket(10.0, 10.0, clock=clock, sleep=clock.sleep)
    assert asyncio.run(bucket.acquire(25)) == 0.0  # oversized: takes a full bucket, owes 15
    assert bucket.tokens == -15.0
    assert asyncio.run(bucket.acquire(1)) == pytest.approx(1.6)
    bucket.refund(100)
    assert bucket.tokens == 10.0  # never above capacity


def test_rate_limiter_settles_tokens():
    clock = FakeClock()
    limiter = RateLimiter(tpm=600, clock=clock, sleep=clock.sleep)  # 10 tokens/s, burst 10
    assert asyncio.run(limiter.acquire(8)) == 0.0
    limiter.settle(8, 3)  # the reply used fewer tokens than estimated
    assert limiter.tokens is not None and limiter.tokens.tokens == 7.0
    assert estimate_tokens(ask("x" * 40, max_tokens=5)) == (9 + 40) // 4 + 5


# ------------------------------------------------------------------- through the CLI
def _cli(tmp_path: Path, api_base: str, model: str) -> pl.DataFrame:
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "simlab.cli.main", "backend=litellm",
           f"backend.model={model}", f"backend.api_base={api_base}",
           "backend.cache.enabled=false", "episodes=1", "scenario.min_turns=2",
           "scenario.max_turns=2", "scenario.max_tokens=24", "progress=false",
           f"hydra.run.dir={run_dir}"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return pl.read_parquet(run_dir / "episodes" / "*" / "events.parquet")


needs_conf = pytest.mark.skipif(not (ROOT / "conf/backend/litellm.yaml").exists(),
                                reason="conf/backend/litellm.yaml not there yet")


@needs_conf
def test_cli_run_against_fake_server(tmp_path):
    with serve() as url:
        events = _cli(tmp_path, url, "openai/fake")
        assert stats(url)["requests"] >= 2
    said = events.filter(pl.col("kind") == "utterance")
    assert said.height >= 2
    assert set(said["backend"]) == {"litellm"}
    assert all(t.strip() for t in said["content"])


@pytest.mark.embedded
@needs_conf
def test_cli_run_against_real_llama_cpp_server(tmp_path):
    with llama_server(tmp_path, "--n_ctx", "2048") as url:
        events = _cli(tmp_path, url, "openai/smollm2")
    said = events.filter(pl.col("kind") == "utterance")
    assert said.height == 2
    assert set(said["backend"]) == {"litellm"}
    assert all(len(t.split()) >= 1 for t in said["content"])
    assert (said["completion_tokens"] > 0).all() and (said["prompt_tokens"] > 20).all()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_backend_loop_is_stopped_at_exit(fake, transport) -> None:
    """simlab's atexit hook stops the shared loop thread (and uvloop's executor threads)
    before teardown; the probe, registered first, runs after it (atexit is LIFO)."""
    code = (
        "import atexit, sys, threading\n"
        "def probe():\n"
        "    print(sorted(t.name for t in threading.enumerate()))\n"
        "atexit.register(probe)\n"
        "from simlab.backends.base import ChatRequest, Message\n"
        "from simlab.backends.litellm_backend import LiteLLMBackend\n"
        f"b = LiteLLMBackend('openai/fake', api_base={fake!r}, transport={transport!r})\n"
        "(r,) = b.generate([ChatRequest(messages=(Message('user', 'hi'),))])\n"
        "assert r.ok, r.error\n"
        "assert 'simlab-lm' in [t.name for t in threading.enumerate()]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['MainThread']"
