"""The projection interface: how one agent sees the shared event log.

A projector is created per episode and is *incremental*: it remembers, per agent, how far
into the log it has read and the messages built so far, and only folds in the new tail.
Views are append-only (the last user message may grow by merging), so prompt prefixes stay
stable across turns and backends can reuse their KV cache.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from simlab.backends.base import Message, Role
from simlab.events import ENV, NARRATION, Event, EventLog

#: Label used for environment events in views and transcripts.
NARRATOR = "Narrator"


@dataclass(slots=True)
class _View:
    """Per-agent projection state: the messages so far and the read cursor."""

    messages: list[Message]
    cursor: int = 0
    # seq of the first event folded into each message (-1: the system message)
    seqs: list[int] = field(default_factory=lambda: [-1])


@dataclass(slots=True)
class ProjectionContext:
    """What a projector needs to know about an episode besides the log."""

    system_prompts: Mapping[str, str]
    names: Mapping[str, str]
    participants: Sequence[str] = field(default_factory=tuple)


class Projector(ABC):
    """Turns the perspective-agnostic log into one agent's chat messages."""

    name: str = "projector"

    def __init__(self, context: ProjectionContext) -> None:
        self.context = context
        self._views: dict[str, _View] = {}

    def view(self, agent_id: str, log: EventLog) -> tuple[Message, ...]:
        """The agent's chat view after every event now in ``log``."""
        state = self._views.get(agent_id)
        if state is None:
            state = _View([Message("system", self.context.system_prompts[agent_id])])
            self._views[agent_id] = state
        events, state.cursor = self.new_events(agent_id, log, state.cursor)
        for event in events:
            placed = self.place(agent_id, event)
            if placed is not None and not _append_merged(state.messages, *placed):
                state.seqs.append(event.seq)
        return tuple(state.messages)

    def refresh(self, context: ProjectionContext) -> None:
        """Take a changed context (an intervention changed a persona, a setting or who
        takes part): each view keeps its history, only its system message changes."""
        self.context = context
        for agent_id, state in self._views.items():
            prompt = context.system_prompts.get(agent_id)
            if prompt is not None and state.messages[0].content != prompt:
                state.messages[0] = Message("system", prompt)

    def message_seqs(self, agent_id: str) -> list[int]:
        """For each message of the agent's view, the seq of the first event in it."""
        state = self._views.get(agent_id)
        return state.seqs if state is not None else [-1]

    def new_events(self, agent_id: str, log: EventLog, cursor: int) -> tuple[list[Event], int]:
        """Events not yet folded into the agent's view, and the new cursor.

        The default reads the whole log's tail; projections that only show what an agent
        perceived override this to read its index instead.
        """
        return log.since(cursor), len(log)

    @abstractmethod
    def place(self, agent_id: str, event: Event) -> tuple[Role, str] | None:
        """Role and text of ``event`` in ``agent_id``'s view, or None if not seen."""

    def label(self, speaker: str) -> str:
        if speaker == ENV:
            return NARRATOR
        return speaker_label(self.context.names.get(speaker, speaker))

    def quoted(self, event: Event) -> str:
        """Event text attributed to its speaker, e.g. ``Maya: hello``."""
        if event.kind == NARRATION or event.speaker == ENV:
            return f"[{self.label(event.speaker)}] {event.content}"
        return f"{self.label(event.speaker)}: {event.content}"


_LABEL_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069:\[\]]+")


def speaker_label(name: str) -> str:
    """A speaker's label in a view, as one line that cannot end early.

    :class:`~simlab.personas.Persona` already rejects such names; this keeps a view safe
    for names that reach a projector some other way. Line breaks, control characters,
    ``:`` and brackets become spaces, so no name can start another speaker's line or
    imitate the narrator.
    """
    cleaned = " ".join(_LABEL_UNSAFE.sub(" ", name).split())
    return cleaned or "?"


def _append_merged(messages: list[Message], role: Role, text: str) -> bool:
    """Append, merging into the previous message when it has the same role.

    Chat templates such as Llama's and Mistral's reject two consecutive messages of the
    same role, so consecutive perceptions are folded into one message, line by line.
    The system message is never merged into. Returns whether it merged.
    """
    if len(messages) > 1 and messages[-1].role == role:
        messages[-1] = Message(role, f"{messages[-1].content}\n{text}")
        return True
    messages.append(Message(role, text))
    return False
