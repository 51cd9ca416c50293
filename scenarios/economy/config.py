"""The economy's config: the one home of its defaults and their checks.

Labour & taxation after the LLM Economist. Workers choose weekly hours each period (one
batch); a planner sets marginal tax rates every tax year.

    simlab scenario=economy                                   # embedded model, 12 workers
    simlab scenario=economy scenario.planner=saez scenario.worker_policy=rule backend=mock
    simlab -m scenario=economy scenario.planner=llm,saez,us_federal seed=0,1,2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from scenarios.economy.planner import check_settings
from scenarios.economy.tax import UtilityParams
from scenarios.economy.workers import SkillRule
from simlab.scenario_config import ScenarioConfig, choice, choices
from simlab.scheduler.phased import AgentPolicy


class PlannerKind(StrEnum):
    llm = "llm"
    saez = "saez"
    us_federal = "us_federal"
    fixed = "fixed"


class TaxPreset(StrEnum):
    us_federal = "us_federal"
    flat = "flat"
    three_bracket = "three_bracket"
    custom = "custom"


class PlannerObjective(StrEnum):
    utilitarian = "utilitarian"
    inverse_income = "inverse_income"


def _candidates() -> list[PlannerKind]:
    return [PlannerKind.llm, PlannerKind.saez, PlannerKind.us_federal]


@dataclass
class EconomyConfig(ScenarioConfig):
    """Workers choose hours under a tax schedule that a planner adjusts every tax year."""

    name: str = "economy"
    n_workers: int | None = 12  # drawn from the population without replacement (None = all)
    ticks: int = 3  # work periods per episode
    tax_year: int = 2  # K: the planner acts every K periods (after an election if voting)
    planner: PlannerKind = PlannerKind.llm
    # llm | rule (myopic best response on the hours grid)
    worker_policy: AgentPolicy = AgentPolicy.llm
    # starting schedule: us_federal (2024 single filer) | flat | three_bracket | custom
    tax_schedule: TaxPreset = TaxPreset.us_federal
    flat_rate: float = 20.0  # percent, for tax_schedule=flat
    brackets: list[float] = field(default_factory=list)  # custom: lower thresholds, first 0
    rates: list[float] = field(default_factory=list)  # custom: marginal rates in percent
    # skill (USD/hour) = income_usd / (hours_per_week * weeks_per_year): the SkillRule and
    # UtilityParams defaults (workers.py, tax.py) are these settings' defaults
    weeks_per_year: float = SkillRule.weeks_per_year
    # hours assumed for people with income but no usual hours; also everyone's hours
    # before the first period
    default_hours: float = SkillRule.default_hours
    # floor (federal minimum wage); also for zero/negative incomes
    min_skill: float = SkillRule.min_skill
    max_skill: float = SkillRule.max_skill
    # personas without income_usd: lognormal skill draw
    fallback_wage_median: float = SkillRule.fallback_wage_median
    fallback_wage_sigma: float = SkillRule.fallback_wage_sigma
    # utility u = (c^(1-eta) - 1)/(1-eta) - psi * h^(1+1/frisch) / (1+1/frisch)
    eta: float = UtilityParams.eta  # CRRA of consumption c (USD/year, after tax and rebate)
    frisch: float = UtilityParams.frisch  # Frisch elasticity of labour supply
    # labour disutility weight: a $25/h worker untaxed picks 40 h/week
    psi: float = UtilityParams.psi
    min_consumption: float = UtilityParams.min_consumption
    inverse_income_floor: float = 1000.0  # inverse-income welfare weights: max(income, floor)
    # utilitarian | inverse_income (what the LLM planner is told)
    planner_objective: PlannerObjective = PlannerObjective.utilitarian
    planner_max_change: int = 10  # an LLM planner moves each rate by at most this many points
    saez_elasticity: float = 0.25  # elasticity of taxable income in the Saez formula
    saez_min_count: int = 2  # brackets with fewer incomes above keep the rate below
    voting: bool = False  # workers elect the planner each tax year (plurality, RNG ties)
    candidates: list[PlannerKind] = field(default_factory=_candidates)
    archetypes: bool = False  # AgentTorch-style: one call per cell, broadcast to its members
    archetype_by: list[str] = field(default_factory=lambda: ["age_band", "skill_band"])
    skill_bands: int = 3
    max_tokens: int = 16
    planner_max_tokens: int = 96
    temperature: float = 0.7
    top_p: float = 0.95

    def __post_init__(self) -> None:
        super().__post_init__()
        check_settings(planner=self.planner, worker_policy=self.worker_policy,
                       planner_objective=self.planner_objective, ticks=self.ticks,
                       tax_year=self.tax_year, n_workers=self.n_workers,
                       planner_max_change=self.planner_max_change,
                       saez_elasticity=self.saez_elasticity,
                       inverse_income_floor=self.inverse_income_floor,
                       skill_bands=self.skill_bands, voting=self.voting,
                       candidates=self.candidates)
        self.planner = choice(PlannerKind, self.planner, "planner")
        self.worker_policy = choice(AgentPolicy, self.worker_policy, "worker_policy")
        self.tax_schedule = choice(TaxPreset, self.tax_schedule, "tax_schedule")
        self.planner_objective = choice(PlannerObjective, self.planner_objective,
                                        "planner_objective")
        self.candidates = choices(PlannerKind, self.candidates, "candidates")
