"""The one backend interface: a batch of chat requests in, responses out.

Every model source (embedded llama.cpp, litellm endpoints, GPU engines, the mock) and every
cross-cutting wrapper (cache, retry, accounting) implements :class:`Backend`, so scenario
code never knows which one it talks to. A batch is the unit because the engine sends all
of a tick's calls together; backends that can run them concurrently should.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from simlab.usage import Usage

Role = Literal["system", "user", "assistant"]
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``content`` is data: it is never parsed for role markers."""

    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A single chat completion to make.

    ``seed`` is derived from the run's RNG by the engine, so a backend that honours it
    reproduces its output. ``json_schema``, when set, asks for structured output that
    the backend parses into :attr:`ChatResponse.parsed`.
    """

    messages: tuple[Message, ...]
    max_tokens: int = 96
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    tag: str = ""  # free-form label for logs (e.g. the agent id); not sent to the model
    # whose call this is, for a pool's sticky routing ("episode/agent"); not sent, not cached
    affinity: str = ""

    def messages_dicts(self) -> list[dict[str, str]]:
        return [m.as_dict() for m in self.messages]

    def cache_key_material(self, model_id: str) -> str:
        """Canonical text of everything that determines the reply (for caches)."""
        return json.dumps(
            {
                "model": model_id,
                "messages": self.messages_dicts(),
                "max_tokens": self.max_tokens,
                "temperature": self.temperature,
                "top_p": self.top_p,
                "seed": self.seed,
                "stop": list(self.stop),
                "json_schema": self.json_schema,
            },
            sort_keys=True,
            ensure_ascii=False,
        )


@dataclass(slots=True)
class ChatResponse:
    """What came back for one request; ``error`` is set (and text empty) on failure."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str = ""
    model: str = ""
    parsed: Any = None
    error: str = ""
    attempts: int = 1
    cost_usd: float = 0.0  # provider price of this call where known (litellm), else 0
    transient: bool = False  # the error is worth retrying (timeout, 429, 5xx, connection)
    cached: bool = False  # served from a response cache; no model was called
    # The backend itself is unusable (bad key, no such model or route: HTTP 401/403/404):
    # no later request can succeed, so the run stops instead of recording failures.
    fatal: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A lone surrogate (a server's JSON "\\udc80", a bad escape) is no character and
        # cannot be written as UTF-8: the events, cache or manifest would fail on it.
        if _SURROGATE.search(self.text):
            self.text = _SURROGATE.sub("\ufffd", self.text)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def usage(self) -> Usage:
        """This reply's counters as one value (what the engine sums over re-asks)."""
        return Usage(self.prompt_tokens, self.completion_tokens, self.latency_s,
                     self.cost_usd, self.attempts)

    @classmethod
    def of_data(cls, data: Any, model: str) -> ChatResponse:
        """A structured reply made without a model (a rule agent's action, via
        ``Scenario.local_response``), shaped exactly like a parsed model reply."""
        return cls(text=json.dumps(data), parsed=data, model=model, finish_reason="stop")


#: Bytes per token of the documented estimate. English BPE averages about four bytes a
#: token; three over-counts by about a quarter, so an estimated view errs toward fitting.
ESTIMATE_BYTES_PER_TOKEN = 3
#: Tokens a chat template adds around each message (role markers, separators) in the
#: estimate, and for the reply's opening (the generation prompt).
ESTIMATE_MESSAGE_OVERHEAD = 6


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` by the documented estimate (no tokenizer at hand)."""
    return -(-len(text.encode("utf-8")) // ESTIMATE_BYTES_PER_TOKEN)


class BackendError(RuntimeError):
    """A backend could not be built or used (bad config, missing extra, missing model)."""


class BackendUnusable(BackendError):
    """A response said the backend cannot serve any request (``ChatResponse.fatal``)."""


class Backend(ABC):
    """Chat backend. Implementations must be safe to call once per tick with any batch."""

    #: Short name of the implementation, e.g. ``"llamacpp"``; recorded on every event.
    name: str = "backend"

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Identifier of the model answering, recorded in events and the manifest."""

    @abstractmethod
    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer every request, in order. Failures are returned, not raised."""

    @property
    def context_window(self) -> int | None:
        """Tokens the model attends to, prompt and reply together; None: no limit known
        to bind (the mock by default). The engine never sends a request over it."""
        return None

    def count_text(self, text: str) -> int:
        """Tokens of one message's text. Backends with a tokenizer use it; the default
        is the documented estimate (:func:`estimate_tokens`)."""
        return estimate_tokens(text)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens of ``messages`` as this backend would send them (chat template
        included). The default sums the estimate plus a per-message overhead."""
        overhead = ESTIMATE_MESSAGE_OVERHEAD
        return sum(self.count_text(m.content) + overhead for m in messages) + overhead

    def prompt_extra(self, request: ChatRequest) -> int:
        """Tokens this backend adds to ``request``'s messages when it sends them (a JSON
        schema written into the prompt); the budget reserves them."""
        return 0

    def describe(self) -> dict[str, Any]:
        """Manifest entry: never include secrets here."""
        return {"backend": self.name, "model": self.model_id}

    def fingerprint(self) -> dict[str, Any]:
        """Every setting that shapes a reply besides the request itself (never a secret).

        Part of the response cache's key, so two servers that serve the same model name,
        another GGUF file with the same name, or another sampler setting never share
        cached replies. Backends with such settings extend this.
        """
        return {"backend": self.name, "model": self.model_id}

    def stats(self) -> dict[str, Any]:
        """Run summary for the manifest (calls, tokens, latency, cache hits …).

        Plain backends have none; the accounting wrapper provides it.
        """
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, sessions)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
