"""Plausibility rules: small named checks that reject impossible people.

Independent attribute draws produce 9-year-old surgeons; a named rule per constraint
keeps each one testable and lets the sampler report *which* rule rejects most draws
(a high count usually means the vocabulary, not the rule, needs fixing).

A rule takes an attribute dict and returns a violation message or ``None``. Rules skip
quietly when the keys they need are absent, so partial records (census rows) can be
checked too. Occupation and education facts come from the vocabulary via
:meth:`Vocab.facts`; :func:`check_plausibility` adds them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from simlab.personas.model import Persona
from simlab.personas.vocab import Vocab, default_vocab

Attrs = Mapping[str, Any]
Rule = Callable[[Attrs], str | None]

RETIREMENT_MIN_AGE = 50
STUDENT_MAX_AGE = 40
_RETIRED = re.compile(r"\b(retired|retiree|pensioner)\b", re.IGNORECASE)
_STUDENT = re.compile(r"\bstudent\b", re.IGNORECASE)


def _age(attrs: Attrs) -> int | None:
    age = attrs.get("age")
    return age if isinstance(age, int) and not isinstance(age, bool) else None


def occupation_min_age(attrs: Attrs) -> str | None:
    age, lo = _age(attrs), attrs.get("occupation_min_age")
    if age is not None and lo is not None and age < lo:
        return f"age {age} is below the minimum age {lo} for occupation {attrs['occupation']!r}"
    return None


def occupation_max_age(attrs: Attrs) -> str | None:
    age, hi = _age(attrs), attrs.get("occupation_max_age")
    if age is not None and hi is not None and age > hi:
        return f"age {age} is above the maximum age {hi} for occupation {attrs['occupation']!r}"
    return None


def retired_age(attrs: Attrs) -> str | None:
    age, occ = _age(attrs), str(attrs.get("occupation") or "")
    if age is not None and _RETIRED.search(occ) and age < RETIREMENT_MIN_AGE:
        return f"retired at age {age}; retirement needs age >= {RETIREMENT_MIN_AGE}"
    return None


def student_age(attrs: Attrs) -> str | None:
    age, occ = _age(attrs), str(attrs.get("occupation") or "")
    if age is not None and _STUDENT.search(occ) and age > STUDENT_MAX_AGE:
        return f"student at age {age}; students are at most {STUDENT_MAX_AGE}"
    return None


def education_age(attrs: Attrs) -> str | None:
    age, lo = _age(attrs), attrs.get("education_min_age")
    if age is not None and lo is not None and age < lo:
        return f"education {attrs['education']!r} at age {age}; it needs age >= {lo}"
    return None


def occupation_education(attrs: Attrs) -> str | None:
    have, need = attrs.get("education_rank"), attrs.get("required_education_rank")
    if have is not None and need is not None and have < need:
        return (
            f"occupation {attrs['occupation']!r} needs education "
            f"{attrs['occupation_education']!r} or higher, has {attrs['education']!r}"
        )
    return None


DEFAULT_RULES: tuple[Rule, ...] = (
    occupation_min_age,
    occupation_max_age,
    retired_age,
    student_age,
    education_age,
    occupation_education,
)


def rule_name(rule: Rule) -> str:
    return getattr(rule, "__name__", repr(rule))


def violations(attrs: Attrs, rules: Sequence[Rule] = DEFAULT_RULES) -> list[tuple[str, str]]:
    """(rule name, message) for every rule that fails; ``attrs`` must already hold facts."""
    out = []
    for rule in rules:
        msg = rule(attrs)
        if msg is not None:
            out.append((rule_name(rule), msg))
    return out


def persona_attrs(persona: Persona) -> dict[str, Any]:
    """Flatten a persona into the attribute dict rules read (extra attributes included)."""
    fields = persona.model_dump(exclude={"attributes", "description"})
    return {**persona.attributes, **fields}


def check_plausibility(
    attrs: Attrs | Persona, rules: Sequence[Rule] = DEFAULT_RULES, vocab: Vocab | None = None
) -> list[str]:
    """Messages ``"<rule>: <why>"`` for every violated rule; empty means plausible.

    Facts about the occupation and education are looked up in ``vocab`` (default: the
    shipped vocabulary) unless ``attrs`` already carries them.
    """
    if isinstance(attrs, Persona):
        attrs = persona_attrs(attrs)
    full = {**(vocab or default_vocab()).facts(attrs), **attrs}
    return [f"{name}: {msg}" for name, msg in violations(full, rules)]
