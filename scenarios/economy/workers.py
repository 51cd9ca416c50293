"""Workers of the labour & taxation scenario: skills from census incomes, prompts, schemas.

**Skill** is the hourly wage implied by a persona's income (census personas carry
``income_usd`` = ACS ``PINCP`` and ``hours_per_week`` = ``WKHP``):

1. income > 0 and hours > 0: ``skill = income / (hours_per_week × weeks_per_year)``;
2. income > 0 but no usual hours (not working, e.g. retired with a pension):
   ``skill = income / (default_hours × weeks_per_year)``;
3. income missing, zero or negative: ``skill = min_skill`` (default: the $7.25 federal
   minimum wage);
4. no income attribute at all (curated or schema-sampled personas): a draw from a
   lognormal with median ``fallback_wage_median`` and log-sd ``fallback_wage_sigma``
   from the scenario RNG.

Skills are then clipped to ``[min_skill, max_skill]`` (a $300k income over a reported
2 hours a week would otherwise imply $2,900 an hour). Which rule applied is recorded
per worker (``skill_source`` in the ``labour`` table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scenarios.economy.tax import HOURS, usd
from simlab.personas.model import Persona

INCOME_KEYS = ("income_usd", "PINCP")
HOURS_KEYS = ("hours_per_week", "WKHP")

HOURS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"hours": {"type": "integer", "enum": list(HOURS)}},
    "required": ["hours"],
    "additionalProperties": False,
}


def vote_schema(titles: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"vote": {"type": "string", "enum": list(titles)}},
        "required": ["vote"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class SkillRule:
    """Parameters of the income → skill rule (see the module docstring)."""

    weeks_per_year: float = 52.0
    default_hours: float = 40.0
    min_skill: float = 7.25
    max_skill: float = 1000.0
    fallback_wage_median: float = 25.0
    fallback_wage_sigma: float = 0.6

    def __post_init__(self) -> None:
        for key in ("weeks_per_year", "default_hours", "min_skill", "fallback_wage_median"):
            if getattr(self, key) <= 0:
                raise ValueError(f"scenario.{key}: must be > 0, got {getattr(self, key)}")
        if self.max_skill < self.min_skill:
            raise ValueError(f"scenario.max_skill: must be >= min_skill ({self.min_skill}), "
                             f"got {self.max_skill}")
        if self.fallback_wage_sigma < 0:
            raise ValueError(f"scenario.fallback_wage_sigma: must be >= 0, "
                             f"got {self.fallback_wage_sigma}")


def _number(attrs: dict[str, Any], keys: Sequence[str]) -> tuple[bool, float | None]:
    """(whether any key is present, its value as float or None)."""
    for key in keys:
        if key in attrs:
            value = attrs[key]
            if value is None:
                return True, None
            try:
                return True, float(value)
            except (TypeError, ValueError):
                raise ValueError(f"persona attribute {key!r}: expected a number, "
                                 f"got {value!r}") from None
    return False, None


def worker_skill(persona: Persona, rule: SkillRule, rng: np.random.Generator) -> tuple[float, str]:
    """``(skill in USD/hour, rule applied)`` for one persona; draws from ``rng`` only for
    personas with no income attribute."""
    attrs = persona.attributes
    has_income, income = _number(attrs, INCOME_KEYS)
    if not has_income:
        draw = rule.fallback_wage_median * float(np.exp(rule.fallback_wage_sigma
                                                        * rng.standard_normal()))
        return float(np.clip(draw, rule.min_skill, rule.max_skill)), "lognormal"
    if income is None or income <= 0:
        return rule.min_skill, "min_skill"
    _, hours = _number(attrs, HOURS_KEYS)
    if hours is not None and hours > 0:
        skill, source = income / (hours * rule.weeks_per_year), "income/hours"
    else:
        skill, source = income / (rule.default_hours * rule.weeks_per_year), "income/default"
    return float(np.clip(skill, rule.min_skill, rule.max_skill)), source


def worker_rules(n_workers: int) -> str:
    """The scenario instructions at the top of every worker's system message (shared by
    all workers, so llama.cpp reuses its KV cache across them)."""
    return (
        "This is an economic simulation. Each period you choose how many hours a week to "
        "work: 0, 10, 20, 30, 40, 50, 60, 70, 80, 90 or 100. You earn your hourly wage for "
        "every hour. Income tax is charged by brackets with marginal rates, and all the "
        f"tax collected is shared out equally among the {n_workers} workers. More hours "
        "mean more money to spend but less free time. Each tax year, a planner sets the "
        'rates. Reply with JSON only, for example {"hours": 40}.'
    )


def wage_line(skill: float, weeks: float) -> str:
    return (f"Your wage is ${skill:,.2f} an hour before tax "
            f"({usd(skill * 40 * weeks)} a year at 40 hours a week).")


def result_line(period: int, hours: float, pretax: float, tax: float, rebate: float,
                consumption: float, group: int = 1) -> str:
    """What a worker (or an archetype, for its group's means) learns after a period."""
    who = "you" if group == 1 else f"the {group} workers you speak for, on average,"
    return (f"Period {period}: {who} worked {hours:.0f} hours a week. Pre-tax income "
            f"{usd(pretax)} a year, tax {usd(tax)}, rebate {usd(rebate)}; "
            f"{usd(consumption)} to spend.")


def retrospective_vote(utilities: Sequence[float], incumbent: str, challengers: Sequence[str],
                       rng: np.random.Generator) -> str:
    """A rule voter: keep the incumbent if my utility did not fall over the last period,
    else vote for a challenger drawn uniformly (one RNG draw only in that case)."""
    if len(utilities) < 2 or utilities[-1] >= utilities[-2] or not challengers:
        return incumbent
    return challengers[int(rng.integers(len(challengers)))]
