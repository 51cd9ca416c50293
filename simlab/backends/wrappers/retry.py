"""Retry transient failures with bounded exponential backoff and seeded jitter.

Only responses an inner backend marked ``transient`` (timeouts, 429, 5xx, connection
errors) are retried; a bad request or an unparseable reply would fail the same way again.
Each round re-sends just the still-failing subset as one batch, so a tick's successful
calls are never repeated. The wrapper never raises: an exception from the inner backend is
turned into a transient error for the whole batch and retried like any other.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from simlab.backends.base import Backend, ChatRequest, ChatResponse
from simlab.backends.wrappers.base import BackendWrapper

#: ``ChatResponse.extra`` key an inner backend may set from a Retry-After header.
RETRY_AFTER_KEY = "retry_after_s"


class RetryingBackend(BackendWrapper):
    """Re-send transient failures up to ``max_attempts`` calls per request.

    The wait before round ``k + 1`` is ``cap = min(max_s, initial_s * 2**(k - 1))``; with
    ``jitter`` it is drawn uniformly from ``[cap / 2, cap]`` ("equal jitter", so waits stay
    bounded by ``max_s`` yet callers that failed together spread out). The jitter RNG is
    ``random.Random(seed)``, never the global one, so runs and tests are reproducible; give
    concurrent processes different seeds. A ``retry_after_s`` hint in a failed response's
    ``extra`` raises the wait to that value (still capped at ``max_s``).

    The final response carries ``attempts`` (calls made for it), the summed ``latency_s``
    and ``cost_usd`` of all its attempts, and the final attempt's tokens. One still failing
    after ``max_attempts`` has its error prefixed with ``"after {n} attempts: "``.
    """

    kind = "retry"

    def __init__(
        self,
        inner: Backend,
        *,
        max_attempts: int = 4,
        initial_s: float = 0.5,
        max_s: float = 20.0,
        jitter: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
    ) -> None:
        super().__init__(inner)
        if max_attempts < 1:
            raise ValueError(f"retry.max_attempts must be >= 1, got {max_attempts}")
        if initial_s < 0 or max_s < 0:
            raise ValueError(
                f"retry.initial_s and retry.max_s must be >= 0, got {initial_s}, {max_s}"
            )
        self.max_attempts = max_attempts
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter
        self._sleep = sleep
        self._rng = random.Random(seed)
        self.retried_requests = 0  # requests re-sent at least once
        self.gave_up = 0  # requests still failing transiently after max_attempts
        self.slept_s = 0.0

    def settings(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "initial_s": self.initial_s,
            "max_s": self.max_s,
            "jitter": self.jitter,
        }

    def stats(self) -> dict[str, Any]:
        own = {
            "retried_requests": self.retried_requests,
            "gave_up": self.gave_up,
            "slept_s": round(self.slept_s, 6),
        }
        return {**self.inner.stats(), "retry": own}

    def backoff_s(self, round_: int) -> float:
        """Wait after failed round ``round_`` (1-based), before the next one."""
        cap = min(self.max_s, self.initial_s * 2.0 ** min(round_ - 1, 64))
        if not self.jitter:
            return cap
        return cap / 2 + self._rng.uniform(0.0, cap / 2)

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        final: list[ChatResponse | None] = [None] * len(requests)
        latency = [0.0] * len(requests)
        cost = [0.0] * len(requests)
        pending = list(range(len(requests)))
        for round_ in range(1, self.max_attempts + 1):
            batch = self._call([requests[i] for i in pending])
            still: list[int] = []
            failed: list[ChatResponse] = []
            for i, resp in zip(pending, batch, strict=True):
                latency[i] += resp.latency_s
                cost[i] += resp.cost_usd
                if resp.error and resp.transient and round_ < self.max_attempts:
                    still.append(i)
                    failed.append(resp)
                    continue
                error = resp.error
                if error and resp.transient:
                    self.gave_up += 1
                    if round_ > 1:
                        error = f"after {round_} attempts: {error}"
                final[i] = replace(
                    resp, attempts=round_, latency_s=latency[i], cost_usd=cost[i], error=error
                )
            if not still:
                break
            if round_ == 1:
                self.retried_requests += len(still)
            wait = self._wait(round_, failed)
            self.slept_s += wait
            self._sleep(wait)
            pending = still
        return [r for r in final if r is not None]

    def _wait(self, round_: int, failed: Sequence[ChatResponse]) -> float:
        wait = self.backoff_s(round_)
        hints = [r.extra.get(RETRY_AFTER_KEY) for r in failed]
        hinted = [float(h) for h in hints if isinstance(h, int | float) and h > 0]
        if hinted:
            wait = max(wait, min(self.max_s, max(hinted)))
        return wait

    def _call(self, batch: list[ChatRequest]) -> list[ChatResponse]:
        """One inner call; exceptions and short answers become transient errors."""
        try:
            responses = list(self.inner.generate(batch))
        except Exception as exc:  # a transport crash or a bug: record it, never raise
            return [self._failure(f"{type(exc).__name__}: {exc}") for _ in batch]
        if len(responses) != len(batch):
            message = (
                f"backend {self.inner.name} returned {len(responses)} responses "
                f"for {len(batch)} requests"
            )
            return [self._failure(message) for _ in batch]
        return responses

    def _failure(self, message: str) -> ChatResponse:
        return ChatResponse(
            text="", error=message, transient=True, finish_reason="error", model=self.model_id
        )
