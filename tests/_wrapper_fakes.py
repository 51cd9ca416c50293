"""Fake backends and helpers shared by the wrapper tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from simlab.backends import Backend, ChatRequest, ChatResponse, Message
from simlab.backends.wrappers import (
    RetryingBackend,
)

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


