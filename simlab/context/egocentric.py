"""Egocentric context projection (ECP), after SPASM.

Each agent sees the episode from where it stands: its own turns are ``assistant``
messages, what it perceived from others are ``user`` messages with the speaker named, and
events it could not perceive (outside its graph neighbourhood) are absent.
"""

from __future__ import annotations

from simlab.backends.base import Role
from simlab.context.base import Projector
from simlab.events import FAILURE, MEMORY, NOTE, Event, EventLog


class EgocentricProjector(Projector):
    """The default projection: roles are relative to the viewing agent."""

    name = "egocentric"

    def new_events(self, agent_id: str, log: EventLog, cursor: int) -> tuple[list[Event], int]:
        # Only what the agent perceived can appear in its view: read its index.
        return log.perceived(agent_id, cursor)

    def place(self, agent_id: str, event: Event) -> tuple[Role, str] | None:
        # Every event placed here came from the agent's own index (new_events, and the
        # retrieval memory's, read EventLog.perceived), so it was perceived; testing
        # `visible_to` again scanned each broadcast's whole audience (a day's narration
        # to 100,000 agents made a tick cost agents x agents: docs/scaling.md).
        if event.kind in (FAILURE, MEMORY):
            return None
        if event.speaker == agent_id:
            if event.kind == NOTE:
                return "user", f"(Your private note) {event.content}"
            return "assistant", event.content
        if event.kind == NOTE:
            return None
        return "user", self.quoted(event)
