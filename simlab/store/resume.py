"""Resuming into a run directory: is the stored run the same experiment as this one?

A run directory holds one config. Resuming with a different one would mix two
experiments in one store, so the runner (and the CLI, before Hydra writes) refuses it,
naming the keys that differ. Keys a newer simlab added, and values the manifest
redacted, cannot tell runs apart and are not compared; runs stored before ``engine``
was its own group are compared in today's layout (:func:`migrated`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simlab.registry import spec_of_run
from simlab.scenario import Scenario
from simlab.scheduler.settings import MOVED_FROM_SCENARIO
from simlab.store.episodes import RunStore
from simlab.store.manifest import REDACTED

#: Keys that may differ when resuming a run into an existing directory.
RESUMABLE_KEYS = {"episodes", "progress", "max_failed_episodes", "executor"}
#: Keys newer than some stored runs that change what a run does: a run stored without
#: one had this value, so resuming it with another is a different experiment.
CHANGES_THE_WORLD: dict[str, Any] = {
    "interventions": [], "fork": {"parent": None, "at_step": 0, "episodes": []}}


def check_resumable(run_dir: str | Path, config: dict) -> None:
    """Refuse (``ValueError``) a run directory that holds a run of a different config."""
    check_resume(RunStore.peek_manifest(run_dir), config, Path(run_dir))


def same(before: Any, now: Any) -> bool:
    """Whether a stored config value matches the current one. A key the stored run does
    not have (added by a newer simlab) is not compared, and a value the manifest redacted
    matches anything: neither can tell the runs apart."""
    if before == REDACTED:
        return True
    if isinstance(before, dict) and isinstance(now, dict):
        return all(k not in before or same(before[k], v) for k, v in now.items()) and \
            all(k in now for k in before)
    if isinstance(before, list) and isinstance(now, list):
        return len(before) == len(now) and all(map(same, before, now))
    return before == now


def migrated(config: dict) -> dict:
    """A stored config in today's layout: runs made before ``engine`` was its own group
    kept its keys (and a ``_target_``) under ``scenario``. A scenario that schedules its
    own turns ignored its ``schedule``, so that one is dropped, not compared."""
    scenario = config.get("scenario")
    if "engine" in config or not isinstance(scenario, dict):
        return config
    scenario = dict(scenario)
    scenario.pop("_target_", None)
    engine = {k: scenario.pop(k) for k in MOVED_FROM_SCENARIO if k in scenario}
    try:
        cls = spec_of_run(scenario).cls
        if cls.own_schedule is not Scenario.own_schedule:
            engine.pop("schedule", None)
    except ValueError:
        pass
    return {**config, "scenario": scenario, "engine": engine}


def check_resume(old: dict | None, config: dict, run_dir: Path) -> None:
    if not old:
        return
    stored = migrated(old.get("config", {}))
    before = {k: v for k, v in stored.items() if k not in RESUMABLE_KEYS}
    for key, default in CHANGES_THE_WORLD.items():  # a run stored before they existed
        before.setdefault(key, default)             # had none

    now = {k: v for k, v in config.items() if k not in RESUMABLE_KEYS}
    if not same(before, now):
        # keys a newer simlab added (in now only) are not compared, so never named
        changed = sorted(k for k in before if k not in now or not same(before[k], now[k]))
        raise ValueError(
            f"{run_dir}: holds a run with a different config (keys {changed}); "
            "resume only with the same config, or choose a new run directory"
        )
