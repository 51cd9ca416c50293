"""Egocentric context projection (ECP), after SPASM.

Each agent sees the episode from where it stands: its own turns are ``assistant``
messages, what it perceived from others are ``user`` messages with the speaker named, and
events it could not perceive (outside its graph neighbourhood) are absent.
"""

from __future__ import annotations

from simlab.backends.base import Role
from simlab.context.base import Projector
from simlab.events import FAILURE, NOTE, Event


class EgocentricProjector(Projector):
    """The default projection: roles are relative to the viewing agent."""

    name = "egocentric"

    def place(self, agent_id: str, event: Event) -> tuple[Role, str] | None:
        if event.kind == FAILURE or not event.visible_to(agent_id):
            return None
        if event.speaker == agent_id:
            if event.kind == NOTE:
                return "user", f"(Your private note) {event.content}"
            return "assistant", event.content
        if event.kind == NOTE:
            return None
        return "user", self.quoted(event)
