"""What an act produces: a scenario's reading of a reply, its outcome, pending events.

Kept apart from ``simlab.scenario`` so the engine and scenarios can share them without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simlab.backends.base import ChatResponse
from simlab.usage import Usage

if TYPE_CHECKING:
    from simlab.agents import PersonaAgent


@dataclass(slots=True)
class Interpretation:
    """A scenario's reading of one model reply: valid (with what to record) or not."""

    ok: bool
    content: str = ""
    data: Any = None
    error: str = ""


@dataclass(slots=True)
class Outcome:
    """The final result of asking one agent to act this tick (after any re-asks)."""

    agent: PersonaAgent
    interpretation: Interpretation
    response: ChatResponse | None
    seed: int
    usage: Usage = field(default_factory=Usage)  # every attempt's, re-asks included


@dataclass(slots=True)
class PendingEvent:
    """An event ``resolve`` wants recorded; ``record`` appends it to the log."""

    speaker: str
    audience: tuple[str, ...]
    kind: str
    content: str
    call: dict[str, Any] = field(default_factory=dict)
