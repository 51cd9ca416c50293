"""Persona agents: Mesa agents that carry a persona and their per-agent state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mesa

from simlab.personas.model import Persona

if TYPE_CHECKING:
    from simlab.scenario import Scenario


class PersonaAgent(mesa.Agent):
    """An agent speaking as ``persona`` in the role ``role`` (e.g. client, coach).

    ``key`` is the agent's id in the event log; it is a readable string (the persona id,
    suffixed if a persona appears twice) so transcripts and tables are easy to trace.
    Scenario-specific state (a budget, a private plan …) lives in ``state``.
    """

    def __init__(self, model: Scenario, persona: Persona, role: str, key: str) -> None:
        super().__init__(model)
        self.persona = persona
        self.role = role
        self.key = key
        self.state: dict[str, Any] = {}
        self.turns = 0
        self.failures = 0

    @property
    def name(self) -> str:
        return self.persona.name

    def row(self) -> dict[str, Any]:
        """This agent as a row of the ``agents`` table (persona fields flattened)."""
        p = self.persona
        return {
            "agent_id": self.key,
            "name": p.name,
            "role": self.role,
            "persona_id": p.id,
            "age": p.age,
            "gender": p.gender,
            "occupation": p.occupation,
            "location": p.location,
            "temperament": p.temperament,
            "speaking_style": p.speaking_style,
            "goals": list(p.goals),
            "hobbies": list(p.hobbies),
            "description": p.description,
            "attributes": dict(p.attributes),
            "turns": self.turns,
            "failures": self.failures,
        }
