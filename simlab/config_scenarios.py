"""Scenario config schemas: the base every scenario's YAML extends, and each scenario's.

Kept apart from :mod:`simlab.config` (run, backend, population, projection) so adding a
scenario adds its schema here, not to the run-level file; both are registered by
:func:`simlab.config.register_configs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING


class ScheduleName(Enum):
    round_robin = "round_robin"
    random = "random"
    neighbours = "neighbours"
    simultaneous = "simultaneous"


# "continue": record the failure and go on; "stop": end the episode with its reason.
# (Functional form because ``continue`` is a keyword; names must equal values, since
# configs are converted to plain dicts by enum name.)
FailurePolicy = Enum("FailurePolicy", {"continue": "continue", "stop": "stop"})


class DialogueMode(Enum):
    pair = "pair"
    group = "group"


class Termination(Enum):
    rules = "rules"
    judge = "judge"


class GraphKind(Enum):
    complete = "complete"
    ring = "ring"
    star = "star"


class AuctionFormat(Enum):
    english = "english"
    first_price = "first_price"
    second_price = "second_price"


class RuleBidder(Enum):
    truthful = "truthful"
    shading = "shading"
    random = "random"


class BidSchema(Enum):
    open = "open"  # any whole-dollar amount; the auctioneer's rules reject bad ones
    ladder = "ladder"  # amount is one of the legal bid levels (grammar-enforced backends)


class PlannerKind(Enum):
    llm = "llm"
    saez = "saez"
    us_federal = "us_federal"
    fixed = "fixed"


class TaxPreset(Enum):
    us_federal = "us_federal"
    flat = "flat"
    three_bracket = "three_bracket"
    custom = "custom"


class PlannerObjective(Enum):
    utilitarian = "utilitarian"
    inverse_income = "inverse_income"


class AgentPolicy(Enum):
    llm = "llm"  # every agent asks the backend
    rule = "rule"  # rule agents (best-response workers, DeGroot opinions) answer locally


class NetworkKind(Enum):
    small_world = "small_world"
    scale_free = "scale_free"
    sbm = "sbm"


@dataclass
class ScheduleConfig:
    name: ScheduleName = ScheduleName.round_robin
    allow_repeat: bool = False  # only for "random"


@dataclass
class ScenarioConfig:
    _target_: str = MISSING
    name: str = MISSING
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    max_reasks: int = 1
    on_failure: FailurePolicy = FailurePolicy["continue"]  # type: ignore[valid-type]
    max_consecutive_failures: int = 3
    max_steps: int = 200  # engine safety cap on ticks; scenarios end themselves sooner


@dataclass
class DialogueConfig(ScenarioConfig):
    _target_: str = "scenarios.dialogue.DialogueScenario"
    name: str = "dialogue"
    mode: DialogueMode = DialogueMode.pair
    group_size: int = 3
    roles: list[dict[str, str]] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    graph: GraphKind = GraphKind.complete
    min_turns: int = 6
    max_turns: int = 10
    closing_window: int = 2
    termination: Termination = Termination.rules
    max_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.95


@dataclass
class AuctionConfig(ScenarioConfig):
    """House auctions (scenarios/auction.py); see conf/scenario/auction.yaml for keys."""

    _target_: str = "scenarios.auction.AuctionScenario"
    name: str = "auction"
    format: AuctionFormat = AuctionFormat.english
    items_path: str | None = None  # None: scenarios/data/houses.yaml
    items: list[Any] = field(default_factory=list)  # inline items instead of a file
    n_items: int = 2
    n_bidders: int = 3
    rule_bidders: list[RuleBidder] = field(default_factory=list)
    shuffle: bool = True
    min_increment: int = 10_000
    max_rounds: int = 3
    value_noise: float = 0.1
    taste_sd: float = 0.1
    budget_income_multiple: float = 5.0
    shade: float | None = None
    random_out_p: float = 0.3
    bid_schema: BidSchema = BidSchema.ladder
    ladder_size: int = 6
    talk: bool = False
    plan: bool = False
    profiling: bool = False
    ask_dropped: bool = False
    max_tokens: int = 80
    temperature: float = 0.7
    top_p: float = 0.95


@dataclass
class EconomyConfig(ScenarioConfig):
    """Labour & taxation (scenarios/economy.py); see conf/scenario/economy.yaml for keys."""

    _target_: str = "scenarios.economy.EconomyScenario"
    name: str = "economy"
    n_workers: int | None = 12
    ticks: int = 3
    tax_year: int = 2
    planner: PlannerKind = PlannerKind.llm
    worker_policy: AgentPolicy = AgentPolicy.llm
    tax_schedule: TaxPreset = TaxPreset.us_federal
    flat_rate: float = 20.0
    brackets: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    weeks_per_year: float = 52.0
    default_hours: float = 40.0
    min_skill: float = 7.25
    max_skill: float = 1000.0
    fallback_wage_median: float = 25.0
    fallback_wage_sigma: float = 0.6
    eta: float = 0.5
    frisch: float = 0.5
    psi: float = 0.0036
    min_consumption: float = 1.0
    inverse_income_floor: float = 1000.0
    planner_objective: PlannerObjective = PlannerObjective.utilitarian
    planner_max_change: int = 10
    saez_elasticity: float = 0.25
    saez_min_count: int = 2
    voting: bool = False
    candidates: list[PlannerKind] = field(
        default_factory=lambda: [PlannerKind.llm, PlannerKind.saez, PlannerKind.us_federal])
    archetypes: bool = False
    archetype_by: list[str] = field(default_factory=lambda: ["age_band", "skill_band"])
    skill_bands: int = 3
    max_tokens: int = 16
    planner_max_tokens: int = 96
    temperature: float = 0.7
    top_p: float = 0.95


@dataclass
class OpinionConfig(ScenarioConfig):
    """Networked opinion & survey (scenarios/opinion.py); see conf/scenario/opinion.yaml."""

    _target_: str = "scenarios.opinion.OpinionScenario"
    name: str = "opinion"
    n_agents: int | None = 12
    ticks: int = 3
    topic: str = "the federal minimum wage should be raised to $20 an hour"
    scale: int = 7
    graph: NetworkKind = NetworkKind.small_world
    degree: int = 4
    rewire_p: float = 0.1
    p_in: float = 0.5
    p_out: float = 0.05
    group_by: str = "age_band"
    survey_every: int = 2
    questions: list[dict[str, Any]] = field(default_factory=list)
    agent_policy: AgentPolicy = AgentPolicy.llm
    self_weight: float = 0.5
    post_max_chars: int = 160
    archetypes: bool = False
    archetype_by: list[str] = field(default_factory=lambda: ["age_band", "gender"])
    max_tokens: int = 80
    temperature: float = 0.8
    top_p: float = 0.95
