"""Memory policies: what part of an agent's projected view a request carries.

The projector turns the log into each agent's whole egocentric view; a memory policy
then fits that view to the request's :class:`~simlab.context.budget.Budget`. The system
message (persona, scenario instructions and the facts a scenario pins there, such as a
bidder's budget) is always kept. Policies are deterministic functions of the view and
their own per-agent state, so runs stay reproducible from the log.

- ``full``: the whole view, as before memory existed; a view over budget is an error
  (:class:`ContextOverflow`) naming the agent, the step and the sizes.
- ``window``: the newest messages that fit. A trim cuts the history down to ``refill``
  of the budget, so the following turns append to an unchanged prefix (KV and prefix
  caches keep working) until the budget is reached again.
- ``summary`` (:mod:`simlab.context.summary`): as ``window``, but what a trim cuts is
  folded into a rolling summary the agent's own backend writes.
- ``retrieval`` (:mod:`simlab.context.retrieval`): as ``window`` for the newest events,
  plus the older events that score highest on recency, importance and relevance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from simlab.backends.base import ChatRequest, ChatResponse, Message
from simlab.backends.embeddings import EmbeddingConfig
from simlab.context.budget import Budget, ContextOverflow, TokenCounter, message_overhead
from simlab.scenario_config import enum_value

if TYPE_CHECKING:
    from simlab.backends.embeddings import Embedder
    from simlab.context.base import Projector
    from simlab.events import EventLog

#: Where a window dropped older history: the agent is told, in fixed text (never content
#: from the log), so it does not take the first kept line for the start of the episode.
OMITTED = "(Earlier events are not shown.)"


class MemoryName(StrEnum):
    window = "window"
    summary = "summary"
    retrieval = "retrieval"
    full = "full"


class Importance(StrEnum):
    rule = "rule"
    model = "model"


@dataclass
class MemoryConfig:
    """The ``memory`` config group (``memory=window|summary|retrieval|full``)."""

    policy: MemoryName = MemoryName.window
    margin: int = 32  # prompt tokens kept free besides the reply's max_tokens
    refill: float = 0.75  # window: after a trim the history fills this share of the budget
    roles: dict[str, str] = field(default_factory=dict)  # agent role -> policy, overriding
    # summary: the most tokens a rolling summary of older events may take
    summary_tokens: int = 96
    # retrieval: the share of the budget for recalled older events (the rest: the newest
    # events, as window keeps them), the recency decay per tick, and the weights of
    # recency, importance and relevance in an event's score (Generative Agents: 1, 1, 1)
    retrieval_share: float = 0.4
    recency_decay: float = 0.99
    weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    # retrieval: importance by rule or rated by the agent's model (batched, cached, and
    # recorded as memory events), events per rating request, a reflection every N ticks
    # (0: none), and the embedding model for relevance (none: BM25)
    importance: Importance = Importance.rule
    importance_batch: int = 16
    reflect_every: int = 0
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)

    def __post_init__(self) -> None:
        self.policy = enum_value(MemoryName, self.policy, "memory.policy")
        self.importance = enum_value(Importance, self.importance, "memory.importance")
        if self.importance_batch < 1:
            raise ValueError(f"memory.importance_batch: must be >= 1, got "
                             f"{self.importance_batch}")
        if self.reflect_every < 0:
            raise ValueError(f"memory.reflect_every: must be >= 0, got {self.reflect_every}")
        if not isinstance(self.embedding, EmbeddingConfig):
            self.embedding = EmbeddingConfig(**dict(self.embedding))
        self.roles = {role: enum_value(MemoryName, name, f"memory.roles.{role}")
                      for role, name in dict(self.roles).items()}
        if self.margin < 0:
            raise ValueError(f"memory.margin: must be >= 0, got {self.margin}")
        if not 0.1 <= self.refill <= 1.0:
            raise ValueError(f"memory.refill: must be in [0.1, 1], got {self.refill}")
        if self.summary_tokens < 8:
            raise ValueError(f"memory.summary_tokens: must be >= 8, got {self.summary_tokens}")
        if not 0.0 < self.retrieval_share < 1.0:
            raise ValueError(f"memory.retrieval_share: must be in (0, 1), got "
                             f"{self.retrieval_share}")
        if not 0.0 < self.recency_decay <= 1.0:
            raise ValueError(f"memory.recency_decay: must be in (0, 1], got "
                             f"{self.recency_decay}")
        self.weights = [float(w) for w in self.weights]
        if len(self.weights) != 3 or min(self.weights) < 0:
            raise ValueError(f"memory.weights: three weights >= 0 (recency, importance, "
                             f"relevance), got {self.weights}")

    def policy_for(self, role: str) -> MemoryName:
        return MemoryName(self.roles.get(role, self.policy))


@dataclass(frozen=True, slots=True)
class Note:
    """What a policy records from a reply as a ``memory`` event (its agent the only
    audience): a summary, importance scores, a reflection. ``data`` goes to the event's
    ``data`` column beside ``{"memory": <policy>}``."""

    content: str
    data: dict[str, Any] = field(default_factory=dict)


class Memory(ABC):
    """One memory policy for one episode; state, if any, is per agent."""

    name: str = "memory"

    def __init__(self, config: MemoryConfig, counter: TokenCounter) -> None:
        self.config, self.counter = config, counter

    @abstractmethod
    def fit(self, agent: str, step: int, view: tuple[Message, ...],
            budget: Budget) -> tuple[Message, ...]:
        """The messages of ``agent``'s request at ``step``: within ``budget.prompt``."""

    def refit(self, agent: str, step: int, messages: tuple[Message, ...],
              budget: Budget) -> tuple[Message, ...]:
        """A re-ask's messages (a fitted view plus a note) within the budget, statelessly."""
        return self.fit(agent, step, messages, budget)

    def bind(self, projector: Projector, log: Callable[[], EventLog],  # noqa: B027
             embedder: Embedder | None = None) -> None:
        """Give the policy the episode's projector and log (retrieval reads events) and
        the embedder for relevance, if one is configured."""

    def prepare(self, agent: str, step: int, view: tuple[Message, ...], budget: Budget,
                seed: Callable[[], int]) -> list[ChatRequest]:
        """Requests the policy needs answered before it can fit ``agent``'s view (a
        summary of what falls out of it, importance scores, a reflection). The engine
        sends every agent's as one batch per tick and passes each reply to
        :meth:`absorb`, recording what that returns as a ``memory`` event."""
        return []

    def absorb(self, agent: str, step: int, request: ChatRequest,
               response: ChatResponse) -> Note | None:
        """Take the reply to one of :meth:`prepare`'s requests; return what to record."""
        return None

    def overflow(self, agent: str, step: int, size: int, budget: Budget, why: str) -> None:
        raise ContextOverflow(
            f"agent {agent!r} at step {step}: the prompt is {size} tokens, over the budget "
            f"of {budget.prompt} ({budget.describe()}); {why}")


class FullMemory(Memory):
    """Every perceived event; fails fast when that no longer fits."""

    name = "full"

    def fit(self, agent: str, step: int, view: tuple[Message, ...],
            budget: Budget) -> tuple[Message, ...]:
        size = self.counter.count_tokens(view)
        if size > budget.prompt:
            self.overflow(agent, step, size, budget,
                          "memory=full keeps every perceived event: use memory=window, "
                          "a shorter episode, or a model with a larger window")
        return view


class WindowMemory(Memory):
    """The newest messages that fit, trimmed in steps so prefixes stay stable."""

    name = "window"

    def __init__(self, config: MemoryConfig, counter: TokenCounter) -> None:
        super().__init__(config, counter)
        self._start: dict[str, int] = {}  # agent -> first kept history message
        self._overhead: int | None = None

    def fit(self, agent: str, step: int, view: tuple[Message, ...],
            budget: Budget) -> tuple[Message, ...]:
        if len(view) < 2:  # the system message alone
            size = self.counter.count_tokens(view)
            if size > budget.prompt:
                self.overflow(agent, step, size, budget, "the system prompt alone does not fit")
            return view
        start = min(self._start.get(agent, 0), len(view) - 2)
        kept = self.windowed(agent, view, start)
        if self.counter.count_tokens(kept) <= budget.prompt:
            return kept
        start = self.trim_start(agent, view, round(budget.prompt * self.config.refill))
        kept = self.windowed(agent, view, start)
        while self.counter.count_tokens(kept) > budget.prompt and start < len(view) - 2:
            start += 1  # the estimate was short: drop one more (rare; counts are exact)
            kept = self.windowed(agent, view, start)
        self._start[agent] = start
        if self.counter.count_tokens(kept) > budget.prompt:
            kept = self.tail_lines(agent, step, view, budget)
        return kept

    def tail_lines(self, agent: str, step: int, view: tuple[Message, ...],
                   budget: Budget) -> tuple[Message, ...]:
        """The system message and the newest lines of the newest message (one per event,
        as the projector merges them) when that message alone is over budget."""
        lines = view[-1].content.split("\n")
        used = self.counter.count_tokens((view[0], Message("user", OMITTED)))
        first = len(lines)
        while first > 0 and used + self.counter.count_text(lines[first - 1]) + 1 <= budget.prompt:
            first -= 1
            used += self.counter.count_text(lines[first]) + 1
        while first < len(lines):
            kept = (view[0], Message(view[-1].role, "\n".join([OMITTED, *lines[first:]])))
            if self.counter.count_tokens(kept) <= budget.prompt:
                return kept
            first += 1
        size = self.counter.count_tokens(view[:1])
        self.overflow(agent, step, size, budget, "the system prompt alone does not fit"
                      if size > budget.prompt else "it leaves no room for the newest event")
        raise AssertionError("unreachable")

    def refit(self, agent: str, step: int, messages: tuple[Message, ...],
              budget: Budget) -> tuple[Message, ...]:
        start = 0
        kept = messages
        while self.counter.count_tokens(kept) > budget.prompt and start < len(messages) - 2:
            start += 1
            kept = self.windowed(agent, messages, start)
        return kept

    def note(self, agent: str) -> str:
        """What stands where older history was cut: a fixed line (a summary, for
        ``summary``)."""
        return OMITTED

    def note_reserve(self, agent: str) -> int:
        """Tokens to reserve for :meth:`note` when choosing where to cut."""
        return self.counter.count_text(self.note(agent))

    def trim_start(self, agent: str, view: tuple[Message, ...], target: int) -> int:
        """The smallest start whose window (system message, omission note, history from
        ``view[1 + start]`` on) is estimated to fit ``target`` tokens. The newest message
        is always kept; :meth:`fit` checks the exact count afterwards."""
        if self._overhead is None:
            self._overhead = message_overhead(self.counter)

        def cost(message: Message) -> int:
            return self.counter.count_text(message.content) + (self._overhead or 0)

        used = self.counter.count_tokens(view[:1]) + self.note_reserve(agent) + self._overhead
        start = len(view) - 2  # keeps view[-1] only
        used += cost(view[-1])
        while start > 0 and used + cost(view[start]) <= target:
            used += cost(view[start])
            start -= 1
        return start

    def windowed(self, agent: str, view: tuple[Message, ...],
                 start: int) -> tuple[Message, ...]:
        """The system message, the note where history was cut, and ``view[1 + start:]``;
        roles still alternate after the note."""
        if start <= 0:
            return view
        rest, note = view[1 + start:], self.note(agent)
        if rest and rest[0].role == "user":
            first = Message("user", f"{note}\n{rest[0].content}")
            return (view[0], first, *rest[1:])
        return (view[0], Message("user", note), *rest)
