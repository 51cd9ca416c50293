"""The sampler's attribute pools (``personas/vocab.yaml``), validated on load.

The vocabulary is data so that users can swap pools (another country's names, another
occupation list) without touching code; it is schema-checked because a typo such as an
occupation requiring education ``"bachelors"`` would otherwise silently disable a rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from simlab.personas.loader import (
    PERSONA_DATA_DIR,
    PersonaFileError,
    format_validation_error,
    load_yaml_document,
)

Names = list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class EducationLevel(_Strict):
    id: str = Field(min_length=1)
    label: str = Field(min_length=1)
    min_age: int = Field(ge=0)
    weight: float = Field(default=1.0, gt=0)
    aliases: tuple[str, ...] = ()


class Occupation(_Strict):
    title: str = Field(min_length=1)
    min_age: int = Field(ge=0)
    max_age: int | None = None
    education: str = Field(min_length=1)


class Vocab(_Strict):
    """Pools to draw persona attributes from; see ``personas/vocab.yaml`` for the format."""

    _education_index: dict[str, tuple[int, EducationLevel]] = PrivateAttr(default_factory=dict)
    _occupation_index: dict[str, Occupation] = PrivateAttr(default_factory=dict)

    age_range: tuple[int, int]
    genders: dict[str, float]
    education_levels: list[EducationLevel] = Field(min_length=1)
    life_stages: dict[str, tuple[int, int]]
    occupations: list[Occupation] = Field(min_length=1)
    first_names: dict[str, Names]
    last_names: Names = Field(min_length=1)
    locations: Names = Field(min_length=1)
    temperaments: Names = Field(min_length=1)
    speaking_styles: Names = Field(min_length=1)
    goals: dict[str, Names]
    hobbies: Names = Field(min_length=1)

    @model_validator(mode="after")
    def _cross_references(self) -> Vocab:
        lo, hi = self.age_range
        if not 0 <= lo <= hi:
            raise ValueError(f"age_range must be [min, max] with 0 <= min <= max, got {lo}, {hi}")
        if not self.genders or any(w <= 0 for w in self.genders.values()):
            raise ValueError("genders needs at least one gender, each with a positive weight")
        for gender in self.genders:
            if not self.first_names.get(gender):
                raise ValueError(f"first_names has no names for gender {gender!r}")
        levels = {e.id for e in self.education_levels}
        for occ in self.occupations:
            if occ.education not in levels:
                raise ValueError(
                    f"occupation {occ.title!r} requires unknown education {occ.education!r} "
                    f"(known: {', '.join(sorted(levels))})"
                )
        for key in self.goals:
            if key != "any" and key not in self.life_stages:
                raise ValueError(f"goals key {key!r} is neither 'any' nor a life stage")
        for age in (lo, hi):
            if self.life_stage(age) is None:
                raise ValueError(f"no life stage covers age {age}")
        return self

    def life_stage(self, age: int) -> str | None:
        for name, (lo, hi) in self.life_stages.items():
            if lo <= age <= hi:
                return name
        return None

    def goal_pool(self, age: int) -> list[str]:
        stage = self.life_stage(age)
        return [*self.goals.get("any", []), *(self.goals.get(stage, []) if stage else [])]

    def model_post_init(self, context: Any, /) -> None:
        # Case-insensitive lookup tables; rules consult them for every sampled draw.
        self._education_index = {
            n.lower(): (rank, level)
            for rank, level in enumerate(self.education_levels)
            for n in (level.id, level.label, *level.aliases)
        }
        self._occupation_index = {o.title.lower(): o for o in self.occupations}

    def education_level(self, name: str) -> tuple[int, EducationLevel] | None:
        """(rank, level) for an id, label or alias, case-insensitively."""
        return self._education_index.get(name.strip().lower())

    def occupation(self, title: str) -> Occupation | None:
        return self._occupation_index.get(title.strip().lower())

    def facts(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Constraint facts the plausibility rules read (occupation ages, education ranks).

        Rules take only an attribute dict; this puts the vocabulary's knowledge into it, so
        the same rules check sampled, hand-written and census-derived records.
        """
        out: dict[str, Any] = {}
        occ = self.occupation(str(attrs["occupation"])) if attrs.get("occupation") else None
        if occ is not None:
            out["occupation_min_age"] = occ.min_age
            out["occupation_max_age"] = occ.max_age
            out["occupation_education"] = occ.education
            req = self.education_level(occ.education)
            out["required_education_rank"] = req[0] if req else None
        edu = self.education_level(str(attrs["education"])) if attrs.get("education") else None
        if edu is not None:
            out["education_rank"] = edu[0]
            out["education_min_age"] = edu[1].min_age
        return out


def default_vocab_path() -> Path:
    return PERSONA_DATA_DIR / "vocab.yaml"


def load_vocab(path: str | Path | None = None) -> Vocab:
    """Load and validate a vocabulary file; errors name the file and the offending field."""
    path = Path(path) if path is not None else default_vocab_path()
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise PersonaFileError(path, f"{path}: vocabulary must be a .yaml file")
    data, _ = load_yaml_document(path)
    if not isinstance(data, dict):
        raise PersonaFileError(path, f"{path}: expected a mapping of pools")
    try:
        return Vocab.model_validate(data)
    except ValidationError as exc:
        raise PersonaFileError(
            path, format_validation_error(exc, str(path), Vocab.model_fields)
        ) from exc


@lru_cache(maxsize=1)
def default_vocab() -> Vocab:
    """The shipped vocabulary, parsed once (rule checks call this per record)."""
    return load_vocab(default_vocab_path())
