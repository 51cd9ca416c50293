"""The context budget: how many prompt tokens a request may carry.

A request fits its backend when ``prompt + max_tokens <= window``; the engine keeps a
``margin`` besides, for a re-ask's note and for tokenizers that only estimate. Everything
here is arithmetic on one backend's own counts, so it holds for the mock's words, for
llama.cpp's tokens and for litellm's tokenizer alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from simlab.backends.base import Message


class TokenCounter(Protocol):
    """What a memory policy needs from a backend: its two counts (see ``Backend``)."""

    def count_text(self, text: str) -> int: ...

    def count_tokens(self, messages: Sequence[Message]) -> int: ...


class ContextOverflow(RuntimeError):
    """A view cannot be sent within its backend's window: raised before any call, with
    the agent, the step and the sizes, so a run fails once instead of on every call."""


@dataclass(frozen=True, slots=True)
class Budget:
    """The prompt tokens one request may use: ``window - max_tokens - margin``."""

    window: int
    max_tokens: int
    margin: int

    @property
    def prompt(self) -> int:
        return self.window - self.max_tokens - self.margin

    def describe(self) -> str:
        return (f"context window {self.window} - max_tokens {self.max_tokens} - "
                f"margin {self.margin} = {self.prompt} prompt tokens")


def budget_for(window: int | None, max_tokens: int, margin: int, *, agent: str = "",
               step: int = 0) -> Budget | None:
    """The budget of one request, or None where the backend declares no window.

    A budget that leaves no room for any prompt is a configuration error, named here.
    """
    if window is None:
        return None
    budget = Budget(window, max_tokens, margin)
    if budget.prompt <= 0:
        raise ContextOverflow(
            f"agent {agent!r} at step {step}: no room for a prompt ({budget.describe()}); "
            f"lower the scenario's max_tokens or memory.margin, or use a larger window")
    return budget


def message_overhead(counter: TokenCounter) -> int:
    """Tokens the backend's chat template adds per message, measured once (at least 0):
    a two-message prompt less a one-message prompt less the second message's text."""
    system = Message("system", "x")
    probe = Message("user", "y")
    extra = counter.count_tokens((system, probe)) - counter.count_tokens((system,))
    return max(0, extra - counter.count_text(probe.content))
