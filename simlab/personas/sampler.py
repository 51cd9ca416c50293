"""Schema sampling of personas, in the style of SPASM.

Attributes are drawn independently from the pools in ``personas/vocab.yaml``, checked by
the plausibility rules, redrawn on rejection, and rendered to a short description by a
fixed template. Independent draws plus rejection keep the pools simple and the
constraints explicit; the rejection counts show which constraints bite.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simlab.personas.model import Persona
from simlab.personas.rules import (
    DEFAULT_RULES,
    Rule,
    check_plausibility,
    rule_name,
    violations,
)
from simlab.personas.vocab import Vocab, load_vocab

__all__ = [
    "DEFAULT_RULES",
    "PersonaSampler",
    "SamplingError",
    "check_plausibility",
    "render_description",
]

UNIQUE_NAME = "unique_name"
_INITIALS = "ABCDEFGHIJKLMNOPRSTW"
# (subject, possessive, "is", verb suffix): "she enjoys" but "they enjoy".
_PRONOUNS = {
    "female": ("She", "her", "is", "s"),
    "male": ("He", "his", "is", "s"),
}
_THEY = ("They", "their", "are", "")


class SamplingError(RuntimeError):
    """No plausible persona was found within the attempt budget."""


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _article(age: int) -> str:
    # "an 18-year-old", "an 80-year-old": the article follows the spoken number.
    return "an" if str(age).startswith("8") or age in (11, 18) else "a"


def _cdf(weights: Sequence[float]) -> np.ndarray:
    cdf = np.cumsum(np.asarray(weights, dtype=float))
    return cdf / cdf[-1]


def _weighted(rng: np.random.Generator, cdf: np.ndarray) -> int:
    return min(int(np.searchsorted(cdf, rng.random(), side="right")), len(cdf) - 1)


def render_description(attrs: Mapping[str, Any]) -> str:
    """Two or three plain sentences (who, temperament and hobbies, goals).

    A fixed template keeps descriptions short and uniform, which small models follow
    better than varied prose, and makes them reproducible from the attributes alone.
    Missing attributes drop out of the sentence instead of leaving gaps.
    """
    name, age = attrs["name"], attrs.get("age")
    subj, _, be, s = _PRONOUNS.get(str(attrs.get("gender") or "").lower(), _THEY)
    who = f"{name} is"
    if age is not None:
        who += f" {_article(int(age))} {age}-year-old {attrs.get('occupation') or 'person'}"
    elif attrs.get("occupation"):
        who += f" a {attrs['occupation']}"
    else:
        who = name
    if attrs.get("location"):
        who += f" from {attrs['location']}"
    sentences = [who + "." if who != name else f"This is {name}."]
    temperament, hobbies = attrs.get("temperament"), list(attrs.get("hobbies") or ())
    if temperament and hobbies:
        sentences.append(f"{subj} {be} {temperament} and enjoy{s} {_join(hobbies)}.")
    elif temperament:
        sentences.append(f"{subj} {be} {temperament}.")
    elif hobbies:
        sentences.append(f"{subj} enjoy{s} {_join(hobbies)}.")
    goals = list(attrs.get("goals") or ())
    if goals:
        sentences.append(f"{subj} want{s} to {_join(goals)}.")
    return " ".join(sentences)


class PersonaSampler:
    """Draw plausible personas from a vocabulary; deterministic given the numpy Generator.

    ``stats`` accumulates over calls to :meth:`sample` (draws, rejections, per-rule
    counts; a draw breaking two rules counts once as a rejection and once per rule).
    """

    def __init__(
        self,
        vocab_path: str | Path | None = None,
        rules: Sequence[Rule] = DEFAULT_RULES,
        *,
        id_prefix: str = "sampled",
        max_attempts: int = 1000,
    ) -> None:
        self.vocab: Vocab = load_vocab(vocab_path)
        self.rules = tuple(rules)
        self.id_prefix = id_prefix
        self.max_attempts = max_attempts
        self._draws = 0
        self._rejections = 0
        self._per_rule: Counter[str] = Counter()
        # Cumulative weights, computed once: weighted picks run per draw, thousands of times.
        self._genders = list(self.vocab.genders)
        self._gender_cdf = _cdf([self.vocab.genders[g] for g in self._genders])
        self._edu_cdf = _cdf([e.weight for e in self.vocab.education_levels])

    @property
    def stats(self) -> dict[str, Any]:
        per_rule = {rule_name(r): self._per_rule[rule_name(r)] for r in self.rules}
        per_rule[UNIQUE_NAME] = self._per_rule[UNIQUE_NAME]
        return {
            "draws": self._draws,
            "rejections": self._rejections,
            "rejection_rate": self._rejections / self._draws if self._draws else 0.0,
            "per_rule": per_rule,
        }

    def _pick(self, rng: np.random.Generator, pool: Sequence[str]) -> str:
        return pool[int(rng.integers(len(pool)))]

    def _pick_some(
        self, rng: np.random.Generator, pool: Sequence[str], lo: int, hi: int
    ) -> tuple[str, ...]:
        k = min(int(rng.integers(lo, hi + 1)), len(pool))
        return tuple(pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False))

    def _with_initial(self, rng: np.random.Generator, name: str) -> str:
        # A middle initial multiplies the name space by 20 before a clash forces a redraw,
        # so populations of thousands do not exhaust the first x last name pool.
        first, last = name.split(" ", 1)
        return f"{first} {_INITIALS[int(rng.integers(len(_INITIALS)))]}. {last}"

    def draw_attributes(self, rng: np.random.Generator) -> dict[str, Any]:
        """One unchecked draw; the dict also carries the vocabulary facts rules need."""
        v = self.vocab
        gender = self._genders[_weighted(rng, self._gender_cdf)]
        name = f"{self._pick(rng, v.first_names[gender])} {self._pick(rng, v.last_names)}"
        age = int(rng.integers(v.age_range[0], v.age_range[1] + 1))
        education = v.education_levels[_weighted(rng, self._edu_cdf)].id
        attrs: dict[str, Any] = {
            "name": name,
            "gender": gender,
            "age": age,
            "education": education,
            "occupation": v.occupations[int(rng.integers(len(v.occupations)))].title,
            "location": self._pick(rng, v.locations),
            "temperament": self._pick(rng, v.temperaments),
            "speaking_style": self._pick(rng, v.speaking_styles),
            "goals": self._pick_some(rng, v.goal_pool(age), 2, 3),
            "hobbies": self._pick_some(rng, v.hobbies, 1, 3),
            "life_stage": v.life_stage(age),
        }
        return {**attrs, **v.facts(attrs)}

    def _to_persona(self, pid: str, attrs: Mapping[str, Any]) -> Persona:
        return Persona(
            id=pid,
            name=attrs["name"],
            age=attrs["age"],
            description=render_description(attrs),
            gender=attrs["gender"],
            occupation=attrs["occupation"],
            location=attrs["location"],
            temperament=attrs["temperament"],
            speaking_style=attrs["speaking_style"],
            goals=attrs["goals"],
            hobbies=attrs["hobbies"],
            attributes={"education": attrs["education"], "life_stage": attrs["life_stage"]},
        )

    def sample(self, n: int, rng: np.random.Generator, *, start: int = 0) -> list[Persona]:
        """``n`` plausible personas with ids ``<prefix>-<start>`` … (zero-padded to 4).

        Names are unique within one call, so agents in a scenario never share a name.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError("rng must be a numpy Generator, e.g. np.random.default_rng(seed)")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        personas: list[Persona] = []
        names: set[str] = set()
        for i in range(start, start + n):
            failed: Counter[str] = Counter()
            for _ in range(self.max_attempts):
                attrs = self.draw_attributes(rng)
                self._draws += 1
                broken = [rule for rule, _ in violations(attrs, self.rules)]
                if not broken and attrs["name"] in names:
                    attrs["name"] = self._with_initial(rng, attrs["name"])
                    if attrs["name"] in names:
                        broken.append(UNIQUE_NAME)
                if not broken:
                    break
                self._rejections += 1
                self._per_rule.update(broken)
                failed.update(broken)
            else:
                top = ", ".join(f"{rule} ({count})" for rule, count in failed.most_common(3))
                raise SamplingError(
                    f"no plausible persona after {self.max_attempts} draws for "
                    f"{self.id_prefix}-{i:04d}; most violated rules: {top}. "
                    "Check the vocabulary's age and education constraints or the rules."
                )
            names.add(attrs["name"])
            personas.append(self._to_persona(f"{self.id_prefix}-{i:04d}", attrs))
        return personas
