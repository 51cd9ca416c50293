"""Grouping labels of a persona: the value of ``group_by=age_band`` or ``gender`` …

One place for what "the group of a persona" means, so archetype cells, scenario metrics
and interventions' ``group:<attribute>=<value>`` audiences all agree.
"""

from __future__ import annotations

from collections.abc import Mapping

from simlab.personas.model import Persona

#: Persona fields a grouping key may name; any other key is read from ``attributes``.
PERSONA_FIELDS = ("gender", "occupation", "location")


def age_band(age: int) -> str:
    """Coarse life-stage bands used to group people for metrics and archetypes."""
    if age < 18:
        return "under 18"
    if age < 35:
        return "18-34"
    if age < 55:
        return "35-54"
    return "55+"


def persona_label(persona: Persona, key: str, extra: Mapping[str, str] | None = None) -> str:
    """The value of grouping key ``key`` for ``persona`` ("unknown" when it has none)."""
    if extra and key in extra:
        return extra[key]
    if key == "age_band":
        return age_band(persona.age)
    value = getattr(persona, key) if key in PERSONA_FIELDS else persona.attributes.get(key)
    return "unknown" if value is None or value == "" else str(value)
