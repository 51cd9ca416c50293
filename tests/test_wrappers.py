"""Backend wrappers: cache, retry, accounting and their composition, all offline."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simlab.backends import Backend, BackendError, ChatRequest, ChatResponse, Message
from simlab.backends.mock import MockBackend
from simlab.backends.wrappers import (
    AccountingBackend,
    CachedBackend,
    RetryingBackend,
    wrap_backend,
)
from simlab.backends.wrappers.accounting import latency_summary

SCHEMA = {
    "type": "object",
    "properties": {"action": {"enum": ["bid", "out"]}, "amount": {"type": "integer"}},
    "required": ["action"],
}


def req(text: str = "Hi there", *, seed: int | None = 7, tag: str = "", **kw) -> ChatRequest:
    msgs = (Message("system", "You are Ann."), Message("user", text))
    return ChatRequest(messages=msgs, seed=seed, tag=tag, **kw)


class DeadBackend(Backend):
    """An unreachable backend: any call raises (and is counted)."""

    name = "mock"

    def __init__(self, model_id: str = "mock/mock-1") -> None:
        self._model_id = model_id
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self._model_id

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        self.calls += 1
        raise ConnectionError("endpoint unreachable")


@dataclass
class FlakyBackend(Backend):
    """Fails request ``tag`` transiently ``failures[tag]`` times, then answers.

    Every attempt takes 0.25 s and costs 0.5 USD; the reply's completion_tokens is the
    attempt number, so tests can tell which attempt's tokens survived.
    """

    failures: dict[str, int] = field(default_factory=dict)
    transient: bool = True
    extra: dict = field(default_factory=dict)
    batches: list[list[str]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    closed: bool = False
    name = "flaky"

    @property
    def model_id(self) -> str:
        return "flaky/1"

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        self.batches.append([r.tag for r in requests])
        return [self._one(r.tag) for r in requests]

    def _one(self, tag: str) -> ChatResponse:
        n = self.seen[tag] = self.seen.get(tag, 0) + 1
        common = {"latency_s": 0.25, "cost_usd": 0.5, "prompt_tokens": 10}
        if n <= self.failures.get(tag, 0):
            return ChatResponse(
                text="", error=f"HTTP 503 #{n}", transient=self.transient,
                finish_reason="error", extra=dict(self.extra), **common,
            )  # fmt: skip
        return ChatResponse(
            text=f"{tag} ok", completion_tokens=n, finish_reason="stop", model="flaky/1", **common
        )

    def close(self) -> None:
        self.closed = True


@dataclass
class FixedBackend(Backend):
    """Returns scripted responses in order, one per request."""

    responses: list[ChatResponse]
    name = "fixed"

    @property
    def model_id(self) -> str:
        return "fixed/1"

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        return [self.responses.pop(0) for _ in requests]


def retrying(inner: Backend, sleeps: list[float], **kw) -> RetryingBackend:
    kw.setdefault("jitter", False)
    return RetryingBackend(inner, sleep=sleeps.append, **kw)


# --- cache -------------------------------------------------------------------------------


def test_cache_counts_hits_and_misses_and_warm_hits_equal_cold(tmp_path: Path) -> None:
    mock = MockBackend()
    cache = CachedBackend(mock, tmp_path / "c.sqlite")
    batch = [req("a"), req("b"), req("c", json_schema=SCHEMA)]
    cold = cache.generate(batch)
    assert (cache.hits, cache.misses, len(mock.calls)) == (0, 3, 3)
    warm = cache.generate(batch)
    assert (cache.hits, cache.misses, len(mock.calls)) == (3, 3, 3)
    for c, w in zip(cold, warm, strict=True):
        assert not c.cached and w.cached
        assert (w.text, w.prompt_tokens, w.completion_tokens, w.finish_reason, w.model) == (
            c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason, c.model,
        )  # fmt: skip
        assert (w.parsed, w.cost_usd, w.attempts, w.latency_s) == (c.parsed, 0.0, 1, 0.0)
        assert w.extra == {"original_latency_s": c.latency_s}
    assert warm[2].parsed == json.loads(cold[2].text)
    assert cache.stats() == {"cache": {"hits": 3, "misses": 3, "stored": 3}}


def test_warm_cache_with_unreachable_backend_makes_zero_calls(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    batch = [req("a", tag="x"), req("b", tag="y")]
    with CachedBackend(MockBackend(), path) as cold_cache:
        cold = cold_cache.generate(batch)
    dead = DeadBackend()
    warm_cache = CachedBackend(dead, path)
    warm = warm_cache.generate(batch)
    assert dead.calls == 0
    assert [w.text for w in warm] == [c.text for c in cold]
    assert all(w.cached and w.ok for w in warm)


def test_only_misses_go_inward_as_one_batch_in_order(tmp_path: Path) -> None:
    flaky = FlakyBackend()
    cache = CachedBackend(flaky, tmp_path / "c.sqlite")
    cache.generate([req("b", tag="b")])
    out = cache.generate([req("a", tag="a"), req("b", tag="b"), req("c", tag="c")])
    assert flaky.batches == [["b"], ["a", "c"]]
    assert [(r.text, r.cached) for r in out] == [("a ok", False), ("b ok", True), ("c ok", False)]


def test_cache_key_depends_on_everything_that_shapes_the_reply(tmp_path: Path) -> None:
    cache = CachedBackend(MockBackend(), tmp_path / "c.sqlite")
    base = cache.key_for(req())
    assert cache.key_for(req()) == base
    assert cache.key_for(req(tag="someone else")) == base  # tags are not sent to the model
    variants = [
        req(seed=8), req(seed=None), req(temperature=0.2), req(top_p=0.5), req(max_tokens=5),
        req("Hello"), req(stop=("\n",)), req(json_schema=SCHEMA),
    ]  # fmt: skip
    keys = {cache.key_for(r) for r in variants}
    assert len(keys) == len(variants) and base not in keys
    other_model = CachedBackend(MockBackend(model="mock-2"), tmp_path / "c.sqlite")
    assert other_model.key_for(req()) != base
    assert len(base) == 64 and int(base, 16) >= 0


def test_errors_are_never_cached(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    mock = MockBackend(fail_every=2)
    cache = CachedBackend(mock, path)
    first = cache.generate([req("a"), req("b")])
    assert [r.ok for r in first] == [True, False]
    second = cache.generate([req("a"), req("b")])
    assert [(r.ok, r.cached) for r in second] == [(True, True), (True, False)]
    assert (cache.hits, cache.misses, cache.stored, len(mock.calls)) == (1, 3, 2, 3)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM responses").fetchone() == (2,)


def test_read_only_cache_serves_hits_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with CachedBackend(MockBackend(), path) as cache:
        cache.generate([req("a")])
    ro = CachedBackend(MockBackend(), path, read_only=True)
    out = ro.generate([req("a"), req("b")])
    assert [r.cached for r in out] == [True, False]
    ro.generate([req("b")])
    assert (ro.hits, ro.misses, ro.stored) == (1, 2, 0)
    with pytest.raises(BackendError, match=r"missing\.sqlite: response cache not found"):
        CachedBackend(MockBackend(), tmp_path / "missing.sqlite", read_only=True)


def test_cache_keeps_name_model_and_describes_itself(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.sqlite"
    cache = CachedBackend(MockBackend(), path)
    assert (cache.name, cache.model_id) == ("mock", "mock/mock-1")
    assert cache.describe() == {
        "backend": "mock", "model": "mock/mock-1", "close_after": None, "fail_every": None,
        "wrappers": ["cache"], "cache": {"path": str(path), "read_only": False},
    }  # fmt: skip
    assert path.is_file()


def test_corrupt_entry_is_a_miss_and_gets_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = CachedBackend(MockBackend(), path)
    key = cache.key_for(req())
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO responses VALUES (?, ?)", (key, "{not json"))
    assert cache.generate([req()])[0].cached is False
    assert cache.generate([req()])[0].cached is True


def test_unopenable_cache_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendError, match=r"c\.sqlite: cannot open response cache"):
        CachedBackend(MockBackend(), path)


# --- retry -------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "expected_sleeps"), [(0, []), (2, [0.5, 1.0]), (3, [0.5, 1.0, 2.0])])
def test_transient_failures_are_retried_with_exponential_backoff(
    k: int, expected_sleeps: list[float]
) -> None:
    sleeps: list[float] = []
    flaky = FlakyBackend({"a": k})
    [resp] = retrying(flaky, sleeps).generate([req(tag="a")])
    assert sleeps == expected_sleeps
    assert (resp.text, resp.error, resp.attempts) == ("a ok", "", k + 1)
    assert (resp.latency_s, resp.cost_usd) == (0.25 * (k + 1), 0.5 * (k + 1))
    assert (resp.completion_tokens, resp.prompt_tokens) == (k + 1, 10)  # the final attempt's


def test_gives_up_after_max_attempts_with_prefixed_error() -> None:
    sleeps: list[float] = []
    backend = retrying(FlakyBackend({"a": 99}), sleeps, max_attempts=3)
    [resp] = backend.generate([req(tag="a")])
    assert (resp.error, resp.attempts, resp.transient) == ("after 3 attempts: HTTP 503 #3", 3, True)
    assert (resp.text, resp.latency_s) == ("", 0.75)
    assert sleeps == [0.5, 1.0]
    assert backend.stats() == {"retry": {"retried_requests": 1, "gave_up": 1, "slept_s": 1.5}}


def test_backoff_is_capped_at_max_s() -> None:
    sleeps: list[float] = []
    retrying(FlakyBackend({"a": 9}), sleeps, max_attempts=6, max_s=1.5).generate([req(tag="a")])
    assert sleeps == [0.5, 1.0, 1.5, 1.5, 1.5]


def test_non_transient_errors_are_returned_at_once() -> None:
    sleeps: list[float] = []
    flaky = FlakyBackend({"a": 1}, transient=False)
    [resp] = retrying(flaky, sleeps).generate([req(tag="a")])
    assert (resp.error, resp.attempts, flaky.batches, sleeps) == ("HTTP 503 #1", 1, [["a"]], [])


def test_inner_exceptions_become_recorded_transient_errors() -> None:
    sleeps: list[float] = []
    dead = DeadBackend()
    out = retrying(dead, sleeps, max_attempts=2).generate([req("a"), req("b")])
    assert dead.calls == 2 and sleeps == [0.5]
    expected = "after 2 attempts: ConnectionError: endpoint unreachable"
    assert [(r.error, r.transient, r.attempts, r.text) for r in out] == [
        (expected, True, 2, ""),
        (expected, True, 2, ""),
    ]


def test_only_the_failing_subset_is_resent() -> None:
    sleeps: list[float] = []
    flaky = FlakyBackend({"b": 2, "c": 1})
    out = retrying(flaky, sleeps).generate([req(tag=t) for t in "abc"])
    assert flaky.batches == [["a", "b", "c"], ["b", "c"], ["b"]]
    assert [(r.text, r.attempts) for r in out] == [("a ok", 1), ("b ok", 3), ("c ok", 2)]
    assert sleeps == [0.5, 1.0]


def test_jitter_is_seeded_and_bounded() -> None:
    def run(seed: int) -> list[float]:
        sleeps: list[float] = []
        RetryingBackend(
            FlakyBackend({"a": 9}), max_attempts=5, jitter=True, seed=seed, sleep=sleeps.append
        ).generate([req(tag="a")])
        return sleeps

    first = run(0)
    assert first == run(0) != run(1)
    for wait, cap in zip(first, [0.5, 1.0, 2.0, 4.0], strict=True):
        assert cap / 2 <= wait <= cap


def test_retry_after_hint_raises_the_wait_up_to_max_s() -> None:
    sleeps: list[float] = []
    flaky = FlakyBackend({"a": 2}, extra={"retry_after_s": 3})
    retrying(flaky, sleeps, max_s=5.0).generate([req(tag="a")])
    assert sleeps == [3.0, 3.0]
    sleeps.clear()
    flaky = FlakyBackend({"a": 1}, extra={"retry_after_s": 60})
    retrying(flaky, sleeps, max_s=5.0).generate([req(tag="a")])
    assert sleeps == [5.0]


def test_short_answer_from_inner_is_a_transient_error() -> None:
    class Short(FlakyBackend):
        def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
            return []

    [resp] = retrying(Short(), [], max_attempts=1).generate([req()])
    assert resp.error == "backend flaky returned 0 responses for 1 requests" and resp.transient


def test_retry_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="max_attempts must be >= 1, got 0"):
        RetryingBackend(MockBackend(), max_attempts=0)


# --- accounting --------------------------------------------------------------------------


def test_latency_percentiles_use_numpy_linear_method() -> None:
    assert latency_summary([0.4, 0.1, 0.3, 0.2]) == {
        "p50": 0.25, "p90": 0.37, "p99": 0.397, "max": 0.4, "mean": 0.25,
    }  # fmt: skip
    assert latency_summary([]) == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}


def test_accounting_counts_everything() -> None:
    responses = [
        ChatResponse("a", prompt_tokens=5, completion_tokens=2, latency_s=0.1, cost_usd=0.25),
        ChatResponse("b", prompt_tokens=7, completion_tokens=3, latency_s=0.2, attempts=3),
        ChatResponse("", error="HTTP 503", transient=True, latency_s=0.3),
        ChatResponse("", error="bad json", latency_s=0.4),
        ChatResponse("c", prompt_tokens=99, completion_tokens=9, cached=True, cost_usd=1.5),
    ]
    acct = AccountingBackend(FixedBackend(responses))
    assert acct.stats()["latency_s"]["max"] == 0.0
    acct.generate([req()] * 2)
    acct.generate([req()] * 3)
    stats = acct.stats()
    wall = stats.pop("wall_s")
    assert wall >= 0.0
    assert stats == {
        "calls": 2, "requests": 5, "errors": 2,
        "errors_by_kind": {"permanent": 1, "transient": 1},
        "cache_hits": 1, "prompt_tokens": 12, "completion_tokens": 5,
        "cost_usd": 0.25, "cost_usd_saved": 1.5, "retries": 2,
        "latency_s": {"p50": 0.25, "p90": 0.37, "p99": 0.397, "max": 0.4, "mean": 0.25},
    }  # fmt: skip


# --- composition -------------------------------------------------------------------------


def test_wrap_backend_composes_accounting_cache_retry(tmp_path: Path) -> None:
    flaky = FlakyBackend({"b": 1})
    sleeps: list[float] = []
    retry = {"jitter": False, "sleep": sleeps.append}
    stack = wrap_backend(flaky, cache_path=tmp_path / "c.sqlite", retry=retry)
    assert isinstance(stack, AccountingBackend)
    assert isinstance(stack.inner, CachedBackend)
    assert isinstance(stack.inner.inner, RetryingBackend)
    assert stack.inner.inner.inner is flaky
    assert (stack.name, stack.model_id) == ("flaky", "flaky/1")
    described = stack.describe()
    assert described["wrappers"] == ["accounting", "cache", "retry"]
    assert (described["backend"], described["model"]) == ("flaky", "flaky/1")
    retry_settings = {"max_attempts": 4, "initial_s": 0.5, "max_s": 20.0, "jitter": False}
    assert described["retry"] == retry_settings

    batch = [req("a", tag="a"), req("b", tag="b")]
    cold = stack.generate(batch)
    warm = stack.generate(batch)
    assert [(r.text, r.attempts) for r in cold] == [("a ok", 1), ("b ok", 2)]
    assert [(r.text, r.attempts, r.cost_usd, r.cached) for r in warm] == [
        ("a ok", 1, 0.5, True), ("b ok", 2, 1.0, True),
    ]  # fmt: skip
    assert flaky.batches == [["a", "b"], ["b"]]  # warm run: no inner call
    assert sleeps == [0.5]
    stats = stack.stats()
    assert {k: stats[k] for k in ("calls", "requests", "cache_hits", "retries", "cost_usd")} == {
        "calls": 2, "requests": 4, "cache_hits": 2, "retries": 1, "cost_usd": 1.5,
    }  # fmt: skip
    assert stats["cache"] == {"hits": 2, "misses": 2, "stored": 2}
    assert stats["retry"] == {"retried_requests": 1, "gave_up": 0, "slept_s": 0.5}
    stack.close()
    assert flaky.closed


def test_warm_stack_with_dead_backend_gives_identical_replies(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    batch = [req("a", tag="x", seed=1), req("b", tag="y", seed=2)]
    with wrap_backend(MockBackend(), cache_path=path) as cold_stack:
        cold = cold_stack.generate(batch)
    dead = DeadBackend()
    warm_stack = wrap_backend(dead, cache_path=path)
    warm = warm_stack.generate(batch)
    assert dead.calls == 0
    fields = ("text", "prompt_tokens", "completion_tokens", "finish_reason", "model", "attempts")
    assert [[getattr(r, f) for f in fields] for r in warm] == [
        [getattr(r, f) for f in fields] for r in cold
    ]
    assert warm_stack.stats()["cache_hits"] == 2


def test_wrap_backend_options_can_drop_layers() -> None:
    mock = MockBackend()
    assert wrap_backend(mock, retry={"enabled": False}, accounting=False) is mock
    only_retry = wrap_backend(mock, accounting=False)
    assert isinstance(only_retry, RetryingBackend) and only_retry.max_attempts == 4
    assert only_retry.describe()["wrappers"] == ["retry"]
