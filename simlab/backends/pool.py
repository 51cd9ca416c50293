"""A pool of model servers: one run's calls spread over several replicas of one model.

Large runs serve a model from several OpenAI-compatible servers (vLLM, SGLang or
llama.cpp, one per GPU or node), as OASIS and AgentSociety do. The pool sends each request
to one replica, chosen by ``routing``:

- ``sticky`` (the default): rendezvous hashing of the request's episode and agent
  (``ChatRequest.affinity``, else its ``tag``) over the healthy replicas. Under ECP an
  agent's prompt only grows, so keeping an agent on one server keeps that server's
  prefix cache warm for it. When a replica goes down, only the agents it held move, and
  they come back when it does.
- ``round_robin``: the next healthy replica for each request: load spread evenly, with
  no affinity (OASIS's lists of servers work this way).

A reply that failed for a reason a retry could fix (connection refused, timeout, 5xx)
takes its replica out of the pool for ``cooldown_s`` seconds, and the call is sent to
another replica at once. Since every replica serves the same model, the pool's
fingerprint names all of them and not the one that answered: a cached reply is found
whichever replica made it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from simlab.backends.base import Backend, BackendError, ChatRequest, ChatResponse, Message

ROUTINGS = ("sticky", "round_robin")  # simlab's; litellm's: simlab/backends/litellm_router.py


def rendezvous(key: str, names: Sequence[str]) -> int:
    """Index of the name with the highest hash weight for ``key`` (highest random weight
    hashing): stable across processes, and removing one name moves only its keys."""
    def weight(name: str) -> bytes:
        return hashlib.sha256(f"{key}\0{name}".encode()).digest()

    return max(range(len(names)), key=lambda i: weight(names[i]))


class EndpointPool(Backend):
    """Several replicas of one model behind one backend.

    Args:
        replicas: one backend per server, all serving the same model.
        names: each replica's name for routing and stats (its ``api_base``).
        routing: ``sticky`` or ``round_robin``.
        cooldown_s: how long a replica that failed stays out of the pool.
        clock: seconds, monotonic (tests pass a fake one).
    """

    name = "pool"

    def __init__(self, replicas: Sequence[Backend], names: Sequence[str], *,
                 routing: str = "sticky", cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if len(replicas) < 1 or len(replicas) != len(names):
            raise BackendError("backend.endpoints: give at least one server URL")
        if len(set(names)) != len(names):
            raise BackendError(f"backend.endpoints: a server is listed twice: {list(names)}")
        if routing not in ROUTINGS:
            raise BackendError(f"backend.routing: {routing!r} is not one of {ROUTINGS}")
        if cooldown_s < 0:
            raise BackendError(f"backend.cooldown_s: must be >= 0, got {cooldown_s}")
        self.replicas, self.names = list(replicas), list(names)
        self.routing, self.cooldown_s, self._clock = routing, cooldown_s, clock
        self._down_until = [0.0] * len(replicas)
        self._next = 0
        self._lock = threading.Lock()
        self.sent = [0] * len(replicas)  # requests each replica was given
        self.failed = [0] * len(replicas)  # of those, failures that took it out
        self.moved = 0  # requests sent again to another replica

    # ------------------------------------------------------------------ routing

    def _up(self, i: int) -> bool:
        return self._clock() >= self._down_until[i]

    def route(self, request: ChatRequest, exclude: Collection[int] = ()) -> int | None:
        """The replica for ``request`` among those not in ``exclude``: a healthy one if
        any; else one cooling down (a probe beats failing outright); None if none left."""
        left = [i for i in range(len(self.replicas)) if i not in exclude]
        healthy = [i for i in left if self._up(i)] or left
        if not healthy:
            return None
        if self.routing == "sticky":
            key = request.affinity or request.tag
            return healthy[rendezvous(key, [self.names[i] for i in healthy])]
        with self._lock:
            self._next += 1
            return healthy[(self._next - 1) % len(healthy)]

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        out: list[ChatResponse | None] = [None] * len(requests)
        tried: list[set[int]] = [set() for _ in requests]
        pending = list(range(len(requests)))
        while pending:
            groups: dict[int, list[int]] = {}
            for i in pending:
                r = self.route(requests[i], tried[i])
                if r is not None:
                    groups.setdefault(r, []).append(i)
            pending = []
            for r, idxs, replies in self._send(groups, requests):
                self.sent[r] += len(idxs)
                for i, reply in zip(idxs, replies, strict=True):
                    out[i] = reply
                    if not reply.ok and reply.transient:
                        tried[i].add(r)
                        pending.append(i)
                if any(not rep.ok and rep.transient for rep in replies):
                    self.failed[r] += 1
                    self._down_until[r] = self._clock() + self.cooldown_s
            pending = [i for i in pending if len(tried[i]) < len(self.replicas)]
            self.moved += len(pending)
        return [o if o is not None else ChatResponse("", error="no replica left",
                                                     transient=True) for o in out]

    def _send(self, groups: dict[int, list[int]], requests: Sequence[ChatRequest]
              ) -> list[tuple[int, list[int], list[ChatResponse]]]:
        """Each replica's share, all replicas at once (each blocks on its own server)."""
        def one(r: int) -> tuple[int, list[int], list[ChatResponse]]:
            idxs = groups[r]
            return r, idxs, self.replicas[r].generate([requests[i] for i in idxs])

        if len(groups) == 1:
            return [one(next(iter(groups)))]
        with ThreadPoolExecutor(len(groups), thread_name_prefix="simlab-pool") as ex:
            return list(ex.map(one, sorted(groups)))

    # ------------------------------------------------------------------ the rest

    @property
    def model_id(self) -> str:
        return self.replicas[0].model_id

    @property
    def context_window(self) -> int | None:
        windows = [w for w in (r.context_window for r in self.replicas) if w is not None]
        return min(windows) if windows else None

    def count_text(self, text: str) -> int:
        return self.replicas[0].count_text(text)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return self.replicas[0].count_tokens(messages)

    def prompt_extra(self, request: ChatRequest) -> int:
        return self.replicas[0].prompt_extra(request)

    def describe(self) -> dict[str, Any]:
        first = {k: v for k, v in self.replicas[0].describe().items() if k != "api_base"}
        return {**first, "pool": {"endpoints": self.names, "routing": self.routing,
                                  "cooldown_s": self.cooldown_s}}

    def fingerprint(self) -> dict[str, Any]:
        first = {k: v for k, v in self.replicas[0].fingerprint().items() if k != "api_base"}
        return {**first, "api_base": sorted(self.names)}

    def stats(self) -> dict[str, Any]:
        return {"pool": {name: {"sent": s, "failed": f}
                         for name, s, f in zip(self.names, self.sent, self.failed, strict=True)},
                "pool_moved": self.moved}

    def close(self) -> None:
        for r in self.replicas:
            r.close()


def litellm_backend(*, endpoints: Sequence[str] = (), routing: str = "sticky",
                    cooldown_s: float = 30.0, **settings: Any) -> Backend:
    """``backend=litellm``: one :class:`LiteLLMBackend`, or with ``endpoints`` a pool of
    them, one per server URL, sharing every other setting; or, for a litellm routing
    strategy (``least_busy`` …), one litellm Router over those servers."""
    from simlab.backends.litellm_backend import LiteLLMBackend
    from simlab.backends.litellm_router import STRATEGIES, RouterBackend

    if not endpoints:
        return LiteLLMBackend(**settings)
    if settings.get("api_base"):
        raise BackendError("backend.endpoints: set either api_base (one server) or "
                           "endpoints (a pool), not both")
    urls = [str(u) for u in endpoints]
    if len(set(urls)) != len(urls):
        raise BackendError(f"backend.endpoints: a server is listed twice: {urls}")
    if routing in STRATEGIES:
        return RouterBackend(endpoints=urls, routing=routing, cooldown_s=cooldown_s,
                             **settings)
    if routing not in ROUTINGS:
        raise BackendError(f"backend.routing: {routing!r} is not one of "
                           f"{(*ROUTINGS, *STRATEGIES)}")
    replicas = [LiteLLMBackend(**settings, api_base=u) for u in urls]
    return EndpointPool(replicas, urls, routing=routing, cooldown_s=cooldown_s)
