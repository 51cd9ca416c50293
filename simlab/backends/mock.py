"""Deterministic stand-in backend for unit tests: no model, no network, no randomness leak.

Replies are a pure function of the request (its canonical cache-key text, which includes
the seed), so a run with the mock is exactly reproducible, and different speakers or
turns see different text. Knobs let tests script the awkward paths a real model takes:
queued replies, agents that say goodbye, and calls that fail.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from simlab.backends.base import Backend, ChatRequest, ChatResponse, Message
from simlab.backends.schema import example_instance, parse_reply

GOODBYE = "Thanks, goodbye!"

_VOCAB_TEXT = """
I you we think maybe the market price is fair today really would like to know more about
that plan sounds good but not sure why so quite interesting weather family work a little
tired honestly and neighbours said same thing yesterday well perhaps next week could help with
"""
_VOCAB = tuple(_VOCAB_TEXT.split())


def _rng_for(request: ChatRequest, model_id: str) -> random.Random:
    digest = hashlib.sha256(request.cache_key_material(model_id).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _words(text: str) -> int:
    return len(text.split())


class MockBackend(Backend):
    """Scriptable fake model.

    Args:
        replies: texts returned in order, one per successful call, before falling back to
            generated text (like simonw/llm's queued mock model).
        close_after: from the ``close_after``-th call of each ``tag`` on (1-based), the
            generated reply ends with :data:`GOODBYE`, so dialogues can terminate.
        fail_every: every k-th call overall returns an error response (no reply consumed).
        model: the model name reported in ``model_id``.
        context_window: a declared window in the mock's tokens (words), so tests can
            drive a scenario far past it; None (the default) binds nothing. A request
            over it fails as llama.cpp's does, so an overflow cannot pass unseen.
        latency_s: seconds each batch takes, like a remote model's round trip, so tests
            and benchmarks of scheduling see episodes that last (replies do not change).
    """

    name = "mock"

    def __init__(
        self,
        replies: Sequence[str] | None = None,
        *,
        close_after: int | None = None,
        fail_every: int | None = None,
        model: str = "mock-1",
        context_window: int | None = None,
        latency_s: float = 0.0,
    ) -> None:
        if latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, got {latency_s}")
        self.latency_s = latency_s
        if fail_every is not None and fail_every < 1:
            raise ValueError(f"fail_every must be >= 1, got {fail_every}")
        self._queue = list(replies or [])
        self.close_after = close_after
        self.fail_every = fail_every
        self.model = model
        if context_window is not None and context_window < 1:
            raise ValueError(f"context_window must be >= 1, got {context_window}")
        self._window = context_window
        self.calls: list[ChatRequest] = []
        self._per_tag: Counter[str] = Counter()

    @property
    def model_id(self) -> str:
        return f"mock/{self.model}"

    @property
    def context_window(self) -> int | None:
        return self._window

    def count_text(self, text: str) -> int:
        return _words(text)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Exactly the ``prompt_tokens`` the mock reports: words, no template."""
        return sum(_words(m.content) for m in messages)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "close_after": self.close_after,
            "fail_every": self.fail_every,
            **({"context_window": self._window} if self._window is not None else {}),
        }

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        if self.latency_s and requests:
            time.sleep(self.latency_s)
        return [self._one(r) for r in requests]

    def _one(self, request: ChatRequest) -> ChatResponse:
        self.calls.append(request)
        self._per_tag[request.tag] += 1
        prompt_tokens = self.count_tokens(request.messages)
        base: dict[str, Any] = {"prompt_tokens": prompt_tokens, "model": self.model_id}
        if self._window is not None and prompt_tokens + request.max_tokens > self._window:
            return ChatResponse(
                text="", finish_reason="error", **base,
                error=f"Requested tokens ({prompt_tokens} + {request.max_tokens}) exceed "
                      f"context window of {self._window}")
        if self.fail_every and len(self.calls) % self.fail_every == 0:
            return ChatResponse(
                text="",
                error=f"mock failure on call {len(self.calls)}",
                finish_reason="error",
                **base,
            )
        if self._queue:
            text = self._queue.pop(0)
            reason = "stop"
        elif request.json_schema is not None:
            instance = example_instance(request.json_schema, _rng_for(request, self.model_id))
            text, reason = json.dumps(instance, ensure_ascii=False), "stop"
        else:
            text, reason = self._generated(request)
        parsed, error = None, ""
        if request.json_schema is not None:
            parsed, error = parse_reply(text, request.json_schema)
        return ChatResponse(
            text=text,
            completion_tokens=_words(text),
            finish_reason=reason,
            parsed=parsed,
            error=error,
            **base,
        )

    def _generated(self, request: ChatRequest) -> tuple[str, str]:
        rng = _rng_for(request, self.model_id)
        words = [rng.choice(_VOCAB) for _ in range(rng.randint(8, 20))]
        text = " ".join(words)
        text = text[0].upper() + text[1:] + "."
        if self.close_after is not None and self._per_tag[request.tag] >= self.close_after:
            text = f"{text} {GOODBYE}"
        for stop in request.stop:
            if stop and stop in text:
                text = text[: text.index(stop)]
        if _words(text) > request.max_tokens:
            return " ".join(text.split()[: request.max_tokens]), "length"
        return text, "stop"
