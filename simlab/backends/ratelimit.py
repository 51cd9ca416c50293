"""Async request and token rate limits for remote backends (token buckets).

Providers cap requests and tokens per minute; going over earns 429s that cost a retry
and a backoff each. Spacing calls on the client side is cheaper. A bucket holds at most
one second's worth of its per-minute allowance, so a tick of 1,000 calls is spread over
the minute instead of being sent as one burst that a provider's sliding window rejects.

Token counts are unknown until a reply arrives, so callers :meth:`RateLimiter.acquire`
an estimate and :meth:`RateLimiter.settle` the difference afterwards; a bucket may go
into debt (negative), which delays later calls rather than losing the overshoot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from simlab.backends.base import ChatRequest

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def estimate_tokens(request: ChatRequest) -> int:
    """A request's token cost before the call: 4 characters a token, plus its reply budget."""
    return sum(len(m.content) for m in request.messages) // 4 + request.max_tokens


class TokenBucket:
    """``rate_per_s`` units refill continuously up to ``capacity``; waiters queue FIFO.

    ``clock`` and ``sleep`` are injectable so tests can run on a fake clock.
    """

    def __init__(
        self,
        rate_per_s: float,
        capacity: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError(f"rate and capacity must be > 0, got {rate_per_s}, {capacity}")
        self.rate = rate_per_s
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._tokens = capacity
        self._last = clock()
        self._lock = asyncio.Lock()  # binds to the running loop on first contended use

    @classmethod
    def per_minute(cls, limit: float, **kw: object) -> TokenBucket:
        """A bucket for a per-minute ``limit`` holding one second's worth (at least 1)."""
        if limit <= 0:
            raise ValueError(f"per-minute limit must be > 0, got {limit}")
        return cls(limit / 60.0, max(1.0, limit / 60.0), **kw)  # type: ignore[arg-type]

    @property
    def tokens(self) -> float:
        """Units available now (negative while in debt)."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self, amount: float = 1.0) -> float:
        """Take ``amount`` units, waiting as needed; return the seconds waited.

        An ``amount`` above ``capacity`` waits for a full bucket and leaves it in debt,
        so one oversized request can never block forever.
        """
        async with self._lock:
            need = min(amount, self.capacity)
            waited = 0.0
            self._refill()
            while self._tokens < need:
                delay = (need - self._tokens) / self.rate
                await self._sleep(delay)
                waited += delay
                self._refill()
            self._tokens -= amount
            return waited

    def refund(self, amount: float) -> None:
        """Give back ``amount`` units (negative: charge more), never above capacity."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens + amount)


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits for one model; either optional."""

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        kw = {"clock": clock, "sleep": sleep}
        self.requests = TokenBucket.per_minute(rpm, **kw) if rpm else None
        self.tokens = TokenBucket.per_minute(tpm, **kw) if tpm else None

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    async def acquire(self, estimated_tokens: int) -> float:
        """Wait for one request slot and ``estimated_tokens``; return the seconds waited."""
        waited = 0.0
        if self.requests is not None:
            waited += await self.requests.acquire(1)
        if self.tokens is not None:
            waited += await self.tokens.acquire(estimated_tokens)
        return waited

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token bucket once the reply's real usage is known."""
        if self.tokens is not None:
            self.tokens.refund(estimated_tokens - actual_tokens)
