"""Backend wrappers: retry, accounting and their composition."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from _wrapper_fakes import DeadBackend, FixedBackend, FlakyBackend, req, retrying

from simlab.backends import ChatRequest, ChatResponse
from simlab.backends.mock import MockBackend
from simlab.backends.wrappers import AccountingBackend, CachedBackend, RetryingBackend, wrap_backend
from simlab.backends.wrappers.accounting import latency_summary

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
