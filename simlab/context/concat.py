"""The naive baseline: one shared transcript with fixed roles, for ablations.

Every agent gets the same history regardless of who is acting or what it could perceive:
the first participant's turns are always ``user`` and everyone else's always
``assistant``. This is how many multi-agent dialogue scripts are written, and it is what
ECP is measured against (it invites role confusion and echoing). Only the system message
differs per agent.
"""

from __future__ import annotations

from simlab.backends.base import Role
from simlab.context.base import Projector
from simlab.events import ENV, FAILURE, INTERVENTION, MEMORY, NOTE, Event


class ConcatProjector(Projector):
    """Shared transcript, roles fixed by participant order, no visibility filter."""

    name = "concat"

    def place(self, agent_id: str, event: Event) -> tuple[Role, str] | None:
        if event.kind in (FAILURE, NOTE, MEMORY):
            return None
        if event.kind == INTERVENTION and not event.audience:  # a change no one perceives
            return None
        participants = self.context.participants
        first = participants[0] if participants else None
        role: Role = "user" if event.speaker in (first, ENV) else "assistant"
        return role, self.quoted(event)
