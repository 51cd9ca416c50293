"""Run a configured experiment: population → episodes on the scheduler graph → store.

One run = one seed = one run directory. The run's RNG is seeded once; it first draws every
episode's seed (so episode k's seed does not depend on which episodes already ran, which
is what makes resuming a killed run exact), then samples the population if asked to.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from simlab.backends.base import Backend
from simlab.population import build_population
from simlab.scenario import SEED_BOUND, Scenario
from simlab.scheduler.engine import TickEngine
from simlab.scheduler.graph import run_episode
from simlab.scheduler.policies import policy_from_config
from simlab.store import RunStore, build_manifest

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Keys of the scenario config consumed by the runner/engine, not the scenario class.
_ENGINE_KEYS = {"_target_", "name", "schedule", "max_steps"}
#: Keys that may differ when resuming a run into an existing directory.
_RESUMABLE_KEYS = {"episodes", "progress"}


@dataclass
class RunSummary:
    run_dir: Path
    episodes_run: int = 0
    episodes_skipped: int = 0
    turns: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    terminations: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("run_dir")
        out["terminations"] = dict(self.terminations)
        out["cost_usd"] = round(self.cost_usd, 6)
        out["wall_s"] = round(self.wall_s, 3)
        return out


def _plain(cfg: Any) -> Any:
    """Config → plain Python (enums to their values) for kwargs and the manifest."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return container


def episode_seeds(seed: int, n: int) -> tuple[np.random.Generator, list[int]]:
    rng = np.random.default_rng(seed)
    return rng, [int(s) for s in rng.integers(SEED_BOUND, size=n)]


def episode_id(index: int) -> str:
    """Episode ids are derived from the index, so a resume can skip without rebuilding."""
    return f"ep{index:05d}"


def make_scenario(cfg: DictConfig, population: list, index: int, seed: int) -> Scenario:
    """Instantiate the configured scenario for episode ``index``."""
    sc = _plain(cfg.scenario)
    cls = get_class(sc["_target_"])
    policy = policy_from_config(sc.get("schedule") or {})
    kwargs = {k: v for k, v in sc.items() if k not in _ENGINE_KEYS}
    return cls(
        population=population,
        episode_id=episode_id(index),
        episode_index=index,
        seed=seed,
        projection=_plain(cfg.projection)["name"],
        schedule=policy,
        **kwargs,
    )


def make_backend(cfg: Any) -> Backend:
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
    return wrap_backend(inner, cache_path=cache_path, retry=retry)


def _check_resume(store: RunStore, config: dict) -> None:
    old = store.read_manifest()
    if not old:
        return
    before = {k: v for k, v in old.get("config", {}).items() if k not in _RESUMABLE_KEYS}
    now = {k: v for k, v in config.items() if k not in _RESUMABLE_KEYS}
    if before != now:
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise ValueError(
            f"{store.run_dir}: holds a run with a different config (keys {changed}); "
            "resume only with the same config, or choose a new run directory"
        )


def run(cfg: DictConfig, run_dir: str | Path, backend: Backend | None = None) -> RunSummary:
    """Run ``cfg.episodes`` episodes into ``run_dir``, skipping ones already stored."""
    from tqdm.auto import tqdm

    store = RunStore(run_dir)
    config = _plain(cfg)
    _check_resume(store, config)
    rng, seeds = episode_seeds(cfg.seed, cfg.episodes)
    own_backend = backend is None
    backend = backend or make_backend(cfg.backend)
    try:
        population = build_population(cfg.population, rng, backend)
    except BaseException:
        if own_backend:
            backend.close()
        raise
    started = time.time()
    manifest = build_manifest(config, cfg.seed, backend.describe(), PROJECT_ROOT)
    manifest["run_dir"] = str(Path(run_dir))
    manifest["status"] = "running"
    store.write_manifest(manifest)

    summary = RunSummary(Path(run_dir))
    done = store.completed_episodes()
    bar_eps = tqdm(total=cfg.episodes, desc="episodes", disable=not cfg.progress, position=0)
    bar_turns = tqdm(desc="turns", unit="turn", disable=not cfg.progress, position=1, leave=False)
    try:
        for index, seed in enumerate(seeds):
            if episode_id(index) in done:
                summary.episodes_skipped += 1
                bar_eps.update()
                continue
            scenario = make_scenario(cfg, population, index, seed)
            bar_turns.reset()
            engine = TickEngine(scenario, backend, max_steps=cfg.scenario.max_steps,
                                on_events=lambda evs: bar_turns.update(len(evs)))
            t0 = time.perf_counter()
            run_episode(engine)
            wall = time.perf_counter() - t0
            _commit(store, scenario, seed, wall, summary)
            bar_eps.update()
    finally:
        bar_turns.close()
        bar_eps.close()
        summary.wall_s = time.time() - started
        complete = summary.episodes_run + summary.episodes_skipped == cfg.episodes
        store.update_manifest(status="complete" if complete else "incomplete",
                              summary=summary.as_dict(), backend_stats=backend.stats(),
                              finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if own_backend:
            backend.close()
    return summary


def _commit(store: RunStore, sc: Scenario, seed: int, wall: float, summary: RunSummary) -> None:
    events = sc.log.rows()
    agents = [sc.by_key[k].row() for k in sc.participants]
    failures = sum(1 for e in sc.log if e.kind == "failure")
    episode = {
        "episode_id": sc.episode_id,
        "episode_index": sc.episode_index,
        "scenario": sc.name,
        "seed": seed,
        "n_turns": sc.turns,
        "n_events": len(events),
        "n_failures": failures,
        "n_steps": sc.steps_taken,
        "termination_reason": sc.termination_reason,
        "wall_s": round(wall, 4),
        "participants": list(sc.participants),
        **sc.outcome(),
    }
    store.write_episode(sc.episode_id, events, agents, episode, tables=sc.tables())
    summary.episodes_run += 1
    summary.turns += sc.turns
    summary.failures += failures
    summary.prompt_tokens += sum(e.prompt_tokens for e in sc.log)
    summary.completion_tokens += sum(e.completion_tokens for e in sc.log)
    summary.cost_usd += sum(e.cost_usd for e in sc.log)
    summary.terminations[sc.termination_reason] += 1
    log.info("episode %s: %d turns, ended: %s", sc.episode_id, sc.turns, sc.termination_reason)
