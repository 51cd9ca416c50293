"""A run's parts, built from its config: the backend, each episode's scenario and seed.

Kept apart from :mod:`simlab.runner` so that what plays episodes (an executor, a Ray
worker, an interview) builds them exactly as a run does, without importing the runner.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from simlab.backends.base import Backend
from simlab.registry import spec_of_run
from simlab.scenario import SEED_BOUND, Scenario
from simlab.scenario_config import ScenarioConfig
from simlab.store.episodes import episode_id


def _plain(cfg: Any) -> Any:
    """Config → plain Python (enums to their values) for kwargs and the manifest."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return container


def episode_seeds(seed: int, n: int) -> tuple[np.random.Generator, list[int]]:
    rng = np.random.default_rng(seed)
    return rng, [int(s) for s in rng.integers(SEED_BOUND, size=n)]


def scenario_config(cfg: DictConfig) -> ScenarioConfig:
    """The composed ``scenario`` node as its dataclass (``__post_init__`` checks it)."""
    node = cfg.scenario
    kind = OmegaConf.get_type(node)
    if isinstance(kind, type) and issubclass(kind, ScenarioConfig):
        return OmegaConf.to_object(node)  # type: ignore[return-value]
    return spec_of_run(_plain(node)).config(**_plain(node))


def make_scenario(cfg: DictConfig, population: list, index: int, seed: int) -> Scenario:
    """Build the configured scenario for episode ``index``, with its agents."""
    config = scenario_config(cfg)
    cls = spec_of_run({"name": config.name}).cls
    return cls.create(config, population, episode_id=episode_id(index), episode_index=index,
                      seed=seed)


def make_backend(cfg: Any, *, retry_seed: int | None = None) -> Backend:
    """Instantiate the configured backend inside its wrappers.

    ``name`` is the group's label and ``cache``/``retry`` configure the wrappers
    (accounting ⊃ cache ⊃ retry ⊃ backend); everything else goes to the backend class.
    """
    from simlab.backends.wrappers import wrap_backend

    spec = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True, throw_on_missing=True)
    assert isinstance(spec, dict)
    cache = spec.pop("cache", None) or {}
    retry = spec.pop("retry", None)
    spec.pop("name", None)
    inner = instantiate(spec, _convert_="all")
    cache_path = cache.get("path") if cache.get("enabled") else None
    if retry_seed is not None:
        retry = {**(retry or {}), "seed": retry_seed}
    return wrap_backend(inner, cache_path=cache_path, retry=retry)


def retry_seed(seed: int, run_dir: Path) -> int:
    """The retry wrapper's jitter seed: from the run seed and the run (job) directory,
    so the jobs of a sweep do not back off in lock-step, yet a rerun repeats itself."""
    digest = hashlib.sha256(f"{seed}\0{Path(run_dir).resolve()}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
