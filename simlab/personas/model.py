"""The persona type: structured attributes plus a natural-language description.

Personas are data. They are validated when loaded, so a typo in a persona file fails with
the file and field named instead of surfacing later as an odd prompt.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

#: Characters no one-line field may hold: control characters (line breaks, tabs, escape
#: sequences), Unicode line/paragraph separators and bidirectional overrides. A name with a
#: line break could forge another speaker's line in every view that quotes it.
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: Characters a name may not hold besides those: views quote speakers as ``Name: text``
#: and the environment as ``[Narrator] text``, so a name must not be able to end a label
#: early or imitate the narrator.
_NAME_FORBIDDEN = re.compile(r"[:\[\]<>|]")


def one_line(value: str) -> str:
    """``value`` if it is a single line of printable text, else a ``ValueError`` naming
    the offending character (pydantic then names the file, record and field)."""
    bad = _NOT_ONE_LINE.search(value)
    if bad:
        raise ValueError(f"must be a single line without control characters "
                         f"(found {bad.group()!r} at position {bad.start()})")
    return value


OneLine = Annotated[str, AfterValidator(one_line)]
# Item-level constraint, so an error points at ``goals[2]`` rather than the whole tuple.
NonBlank = Annotated[str, Field(min_length=1), AfterValidator(one_line)]


class Persona(BaseModel):
    """One simulated person. ``attributes`` holds anything beyond the common fields
    (census columns, Big Five levels, budgets …) so scenarios can add their own."""

    # Stripping keeps hand-edited YAML (trailing spaces, block scalars ending in "\n")
    # from leaking stray whitespace into prompts, where it perturbs tokenisation.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", min_length=1, max_length=64)
    name: OneLine = Field(min_length=1, max_length=80)
    age: int = Field(ge=0, le=120)
    description: str = Field(min_length=1)  # prose: may span lines
    gender: OneLine | None = None
    occupation: OneLine | None = None
    location: OneLine | None = None
    temperament: OneLine | None = None
    speaking_style: OneLine | None = None
    goals: tuple[NonBlank, ...] = ()
    hobbies: tuple[NonBlank, ...] = ()
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_is_a_label(cls, value: str) -> str:
        bad = _NAME_FORBIDDEN.search(value)
        if bad:
            raise ValueError(f"must not contain {bad.group()!r}: names label speakers' "
                             "lines in every view")
        return value

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
