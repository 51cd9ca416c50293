"""Forks: a new run that replays a stored run's episodes up to tick K, then diverges.

A fork is an ordinary run whose config carries ``fork.parent`` (the parent's run
directory), ``fork.at_step`` (K) and optionally ``fork.episodes`` (default: all of
them). ``simlab fork`` composes it from the parent's own overrides plus the new ones, so
it has the parent's seed, population and settings. Each forked episode is run again
from its seed; every backend call before tick K is answered from the parent's call
journal (:mod:`simlab.research.journal`), so those ticks repeat exactly and cost no
call, and from tick K on it runs under the new settings and interventions. Its manifest
keeps the whole ``fork`` section: parent, episodes and step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from simlab.research.journal import Replay


@dataclass
class ForkConfig:
    """The ``fork`` section of a run's config; ``parent`` unset means not a fork."""

    parent: str | None = None
    at_step: int = 0
    episodes: list[str] = field(default_factory=list)  # empty: every parent episode


class ForkError(ValueError):
    """A fork that cannot replay its parent; the message names what and where."""


@dataclass(frozen=True)
class ForkPlan:
    """A checked fork: which parent episodes, replayed up to which tick."""

    parent: Path
    at_step: int
    episodes: tuple[str, ...]

    def includes(self, episode_id: str) -> bool:
        return episode_id in self.episodes

    def replay(self, episode_id: str) -> Replay:
        from simlab.store import read_calls

        rows = read_calls(self.parent, episode_id)
        if rows is None:
            raise ForkError(f"{self.parent}: episode {episode_id} has no call journal "
                            f"(calls.parquet; stored by an older simlab), so it cannot be "
                            f"replayed; run it again to fork it")
        return Replay(tuple(rows), self.at_step, parent=f"{self.parent}/{episode_id}")


def override_key(override: str) -> str:
    """The config key an override sets (``+a.b=1`` → ``a.b``)."""
    return override.split("=", 1)[0].lstrip("+~")


def inherited_overrides(run_dir: Path, overrides: list[str],
                        replaced: frozenset[str] = frozenset()) -> list[str]:
    """A stored run's own overrides (``.hydra/overrides.yaml``), less the keys that
    ``overrides`` and ``replaced`` set and its ``fork``/``hydra`` ones, then
    ``overrides``: the config of that run with some of it changed."""
    hydra_dir = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not hydra_dir.is_file():
        raise ValueError(f"{run_dir}: no .hydra/overrides.yaml; only a run made by the "
                         f"simlab command can be forked or interviewed")
    inherited = [str(o) for o in yaml.safe_load(hydra_dir.read_text()) or []]
    mine = {override_key(o) for o in overrides} | replaced
    kept = [o for o in inherited if override_key(o) not in mine
            and not override_key(o).startswith(("fork.", "hydra."))]
    return kept + list(overrides)


def fork_plan(cfg: Any) -> ForkPlan | None:
    """The run's fork, checked against its parent, or None for an ordinary run."""
    from simlab.store import RunStore
    from simlab.store.episodes import episode_id

    fork = cfg.get("fork") or {}
    if not fork.get("parent"):
        return None
    parent = Path(fork["parent"]).resolve()
    manifest = RunStore.peek_manifest(parent)
    if manifest is None:
        raise ForkError(f"fork.parent: {parent} is not a run directory (no manifest.json)")
    at = fork.get("at_step", 0)
    if isinstance(at, bool) or not isinstance(at, int) or at < 0:
        raise ForkError(f"fork.at_step: must be a tick, an integer >= 0, got {at!r}")
    if manifest.get("seed") != cfg.seed:
        raise ForkError(f"seed: a fork keeps its parent's seed ({manifest.get('seed')}), "
                        f"got {cfg.seed}")
    stored = sorted(p.name for p in (parent / "episodes").glob("*") if p.is_dir())
    wanted = list(fork.get("episodes") or [])
    unknown = [e for e in wanted if e not in stored]
    if unknown:
        raise ForkError(f"fork.episodes: {unknown} are not stored in {parent} "
                        f"(it holds {stored})")
    theirs = (manifest.get("config") or {}).get("episodes")
    if theirs is not None and cfg.episodes != theirs:
        # the run RNG draws every episode's seed before it samples the population
        raise ForkError(f"episodes: a fork keeps its parent's episode count ({theirs}), "
                        f"got {cfg.episodes}")
    chosen = tuple(wanted or stored)
    ours = {episode_id(i) for i in range(cfg.episodes)}
    for eid in chosen:
        folder = parent / "episodes" / eid
        if eid not in ours:
            raise ForkError(f"fork.episodes: {eid} is not an episode id of this run")
        if not (folder / "calls.parquet").is_file():
            raise ForkError(f"{parent}: episode {eid} has no call journal (calls.parquet; "
                            f"stored by an older simlab), so it cannot be replayed; run it "
                            f"again to fork it")
        steps = _steps(folder)
        if steps is not None and at > steps:
            raise ForkError(f"fork.at_step: {at} is beyond the end of episode {eid} "
                            f"({steps} steps); a fork must diverge within it")
    _check_interventions(cfg, manifest.get("config", {}), at)
    return ForkPlan(parent, at, chosen)


def _steps(folder: Path) -> int | None:
    import polars as pl

    row = pl.read_parquet(folder / "episode.parquet").row(0, named=True)
    steps = row.get("n_steps")
    return steps if isinstance(steps, int) else None


def _start(spec: Any) -> Any:
    """The first tick an intervention spec may apply at (a conditional one: 0 unless
    ``at`` is given); None for what is not a spec."""
    if not isinstance(spec, dict):
        return None
    return spec.get("at", 0 if "when" in spec else None)


def _check_interventions(cfg: Any, parent_config: dict, at: int) -> None:
    """Before tick K a fork must intervene exactly as its parent did, or the ticks it
    replays would not be the ones stored."""
    from omegaconf import OmegaConf

    ours = cfg.get("interventions")
    ours = OmegaConf.to_container(ours, resolve=True) if OmegaConf.is_config(ours) else \
        list(ours or [])
    theirs = parent_config.get("interventions") or []
    early = [x for x in ours if isinstance(_start(x), int) and _start(x) < at]
    before = [x for x in theirs if isinstance(_start(x), int) and _start(x) < at]
    if early != before:
        added = next((i for i, x in enumerate(ours) if x in early and x not in before), None)
        if added is None:  # one of the parent's was dropped or moved
            gone = next(i for i, x in enumerate(theirs) if x in before and x not in early)
            raise ForkError(f"interventions: the parent's interventions[{gone}] (at step "
                            f"{_start(theirs[gone])}) happened before the fork's step {at}; "
                            f"a fork keeps every intervention before its step")
        raise ForkError(f"interventions[{added}].at: a fork at step {at} cannot change what "
                        f"happened before it; intervene at step {at} or later")
