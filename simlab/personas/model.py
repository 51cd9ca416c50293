"""The persona type: structured attributes plus a natural-language description.

Personas are data. They are validated when loaded, so a typo in a persona file fails with
the file and field named instead of surfacing later as an odd prompt.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Item-level constraint, so an error points at ``goals[2]`` rather than the whole tuple.
NonBlank = Annotated[str, Field(min_length=1)]


class Persona(BaseModel):
    """One simulated person. ``attributes`` holds anything beyond the common fields
    (census columns, Big Five levels, budgets …) so scenarios can add their own."""

    # Stripping keeps hand-edited YAML (trailing spaces, block scalars ending in "\n")
    # from leaking stray whitespace into prompts, where it perturbs tokenisation.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=80)
    age: int = Field(ge=0, le=120)
    description: str = Field(min_length=1)
    gender: str | None = None
    occupation: str | None = None
    location: str | None = None
    temperament: str | None = None
    speaking_style: str | None = None
    goals: tuple[NonBlank, ...] = ()
    hobbies: tuple[NonBlank, ...] = ()
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("gender", "occupation", "location", "temperament", "speaking_style")
    @classmethod
    def _blank_is_error(cls, value: str | None) -> str | None:
        # An empty optional field is almost always a half-filled template; say so rather
        # than render "a 30-year-old  from ".
        if value is not None and not value:
            raise ValueError("must not be blank; omit the field instead")
        return value

    @property
    def first_name(self) -> str:
        return self.name.split()[0]
