"""litellm's own routing strategies over a pool of servers (``backend.routing=least_busy``…).

simlab's :class:`~simlab.backends.pool.EndpointPool` offers ``sticky`` (agent affinity, for
warm prefix caches) and ``round_robin``. Users of litellm know its Router's strategies;
these run through a ``litellm.Router`` whose deployments are the pool's servers:

- ``least_busy``: the server with the fewest calls in flight (litellm ``least-busy``);
- ``latency_based``: the fastest server lately (``latency-based-routing``);
- ``usage_based``: the server with the most of its tokens-per-minute left
  (``usage-based-routing-v2``);
- ``simple_shuffle``: a random server per call (``simple-shuffle``; litellm's default).

Failover is the Router's: a call that fails is retried at once (``num_retries`` = 2 x
servers, no wait), and the Router is asked to cool a failed server down for
``cooldown_s`` (``allowed_fails=0``). With litellm 1.110.2 a refused server was not put in
cooldown in our tests (its health cache stayed empty), so each retry draws again: a call
that drew the dead server every time comes back as a transient failure, for the retry
wrapper (``backend.retry``). simlab's own pool (``sticky``, ``round_robin``) takes a failed
server out at once. These strategies ignore agent affinity, so prefix caches see each
agent's calls spread over the servers; and every call pays litellm's own client cost
(about 6 ms of CPU, ``benchmarks/README.md``), where the pool's replicas talk to their
servers directly. The API key is never put in the Router's deployments: it is read
from ``api_key_env`` for each batch and passed with each call, as the plain backend does.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from simlab.backends.base import BackendError, ChatRequest
from simlab.backends.litellm_adapter import served_by
from simlab.backends.litellm_backend import _NO_KEY, LiteLLMBackend

#: simlab's name → litellm's ``routing_strategy``
STRATEGIES = {"least_busy": "least-busy", "latency_based": "latency-based-routing",
              "usage_based": "usage-based-routing-v2", "simple_shuffle": "simple-shuffle"}
GROUP = "simlab-pool"  # the Router's one model group: every server serves the same model


class RouterBackend(LiteLLMBackend):
    """One litellm model served by several servers, routed by a litellm strategy."""

    def __init__(self, *, endpoints: Sequence[str], routing: str, cooldown_s: float,
                 **settings: Any) -> None:
        if routing not in STRATEGIES:
            raise BackendError(f"backend.routing: {routing!r} is not a litellm strategy "
                               f"({sorted(STRATEGIES)})")
        if cooldown_s < 0:
            raise BackendError(f"backend.cooldown_s: must be >= 0, got {cooldown_s}")
        settings.pop("transport", None)  # a Router call is a litellm call
        super().__init__(**settings, transport="litellm")
        self.endpoints, self.routing, self.cooldown_s = list(endpoints), routing, cooldown_s
        self.deployments = [{"model_name": GROUP, "litellm_params": {
            "model": self.model, "api_base": url, "api_key": _NO_KEY,
            "timeout": self.timeout_s, "max_retries": 0}} for url in self.endpoints]
        self._router = self._lt.Router(
            model_list=self.deployments, routing_strategy=STRATEGIES[routing],
            num_retries=2 * len(self.endpoints), retry_after=0, allowed_fails=0,
            cooldown_time=cooldown_s, timeout=self.timeout_s)
        self._served: Counter[str] = Counter()
        self._served_lock = threading.Lock()

    async def _completion(self, request: ChatRequest, key: str | None) -> Any:
        resp = await self._router.acompletion(**{**self.extra, **self._params(request),
                                                 "model": GROUP, "api_key": key or _NO_KEY})
        with self._served_lock:
            self._served[served_by(resp) or "?"] += 1
        return resp

    def describe(self) -> dict[str, Any]:
        mine = {k: v for k, v in super().describe().items() if k != "api_base"}
        return {**mine, "pool": {"endpoints": self.endpoints, "routing": self.routing,
                                 "cooldown_s": self.cooldown_s}}

    def fingerprint(self) -> dict[str, Any]:
        """As the pool's: every server, sorted, not the one that answered."""
        return {**super().fingerprint(), "api_base": sorted(self.endpoints)}

    def stats(self) -> dict[str, Any]:
        with self._served_lock:
            served = dict(self._served)
        return {"pool": {url: {"sent": served.get(url, 0)} for url in self.endpoints},
                **({"pool_unknown": served["?"]} if "?" in served else {})}
