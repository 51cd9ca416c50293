"""Accounting: what a run asked of its backend and what that cost, for the manifest.

It sits outermost in the wrapper stack so it sees every response, cache hits included.
Work figures (tokens, cost, retries, latency) count only responses a model actually
produced: a cache hit cost nothing this run, which is the point of the cache, so hits are
counted separately and their stored cost is reported as ``cost_usd_saved``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from simlab.backends.base import Backend, ChatRequest, ChatResponse
from simlab.backends.wrappers.base import BackendWrapper

# Stats are rounded (to microseconds; costs finer, as one hosted call can cost 1e-6 USD)
# so float noise does not leak into manifests and tests can compare exact values.
_DIGITS = 6
_COST_DIGITS = 9


def error_kind(response: ChatResponse) -> str:
    """Bucket of a failed response: the backend's ``extra["error_kind"]`` if it set one."""
    kind = response.extra.get("error_kind")
    if isinstance(kind, str) and kind:
        return kind
    return "transient" if response.transient else "permanent"


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean (numpy's linear percentiles); all zeros when empty."""
    if not latencies:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    values = np.asarray(latencies, dtype=float)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    summary = {"p50": p50, "p90": p90, "p99": p99, "max": values.max(), "mean": values.mean()}
    return {k: round(float(v), _DIGITS) for k, v in summary.items()}


class AccountingBackend(BackendWrapper):
    """Count calls, requests, errors, tokens, cost, cache hits, retries and latency.

    ``stats()`` returns those figures merged over the inner wrappers' own stats (the
    cache's hit/miss counters, the retry counters). Counters are updated under a lock, so
    concurrent ``generate`` calls from threads are counted correctly.
    """

    kind = "accounting"

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self.calls = 0
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.cache_hits = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        self.cost_usd_saved = 0.0
        self.retries = 0
        self.latencies: list[float] = []
        self.wall_s = 0.0

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        start = time.perf_counter()
        try:
            responses = self.inner.generate(requests)
        finally:
            with self._lock:
                self.calls += 1
                self.requests += len(requests)
                self.wall_s += time.perf_counter() - start
        with self._lock:
            for response in responses:
                self._record(response)
        return responses

    def _record(self, response: ChatResponse) -> None:
        if response.error:
            self.errors[error_kind(response)] += 1
        if response.cached:
            self.cache_hits += 1
            self.cost_usd_saved += response.cost_usd
            return
        self.prompt_tokens += response.prompt_tokens
        self.completion_tokens += response.completion_tokens
        self.cost_usd += response.cost_usd
        self.retries += max(response.attempts - 1, 0)
        self.latencies.append(response.latency_s)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            own = {
                "calls": self.calls,
                "requests": self.requests,
                "errors": sum(self.errors.values()),
                "errors_by_kind": dict(sorted(self.errors.items())),
                "cache_hits": self.cache_hits,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cost_usd": round(self.cost_usd, _COST_DIGITS),
                "cost_usd_saved": round(self.cost_usd_saved, _COST_DIGITS),
                "retries": self.retries,
                "latency_s": latency_summary(self.latencies),
                "wall_s": round(self.wall_s, _DIGITS),
            }
        return {**self.inner.stats(), **own}
