"""Runs stored before engine settings became their own group still resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simlab.runner import run
from simlab.scheduler.settings import MOVED_FROM_SCENARIO
from tests.conftest import compose

OVERRIDES = {
    "economy": ["scenario=economy", "scenario.worker_policy=rule", "scenario.planner=saez",
                "population.n=6", "scenario.n_workers=4", "scenario.ticks=2"],
    "dialogue": ["scenario=dialogue"],
}


def _old_layout(run_dir: Path, target: str, schedule: str, **engine_changes) -> None:
    """Rewrite the manifest's config as simlab wrote it then: the engine keys of the time
    and ``_target_`` under ``scenario``, no ``engine`` (nor ``memory``, which came later)."""
    path = run_dir / "manifest.json"
    m = json.loads(path.read_text())
    config = m["config"]
    config.pop("memory")
    engine = {k: v for k, v in config.pop("engine").items() if k in MOVED_FROM_SCENARIO}
    engine |= engine_changes
    engine["schedule"] = {"name": schedule, "allow_repeat": False}
    config["scenario"] = {"_target_": target, **config["scenario"], **engine}
    path.write_text(json.dumps(m))


def _run(run_dir: Path, name: str, episodes: int) -> dict:
    cfg = compose("backend=mock", "progress=false", f"episodes={episodes}", *OVERRIDES[name])
    run(cfg, run_dir)
    return json.loads((run_dir / "manifest.json").read_text())


@pytest.mark.parametrize(("name", "target", "schedule"), [
    # the economy scheduled its own phases: its stored "simultaneous" is not compared
    ("economy", "scenarios.economy.EconomyScenario", "simultaneous"),
    ("dialogue", "scenarios.dialogue.DialogueScenario", "round_robin"),
])
def test_a_run_in_the_old_config_layout_resumes(tmp_path, name, target, schedule):
    _run(tmp_path / "run", name, 1)
    _old_layout(tmp_path / "run", target, schedule)
    m = _run(tmp_path / "run", name, 2)
    assert m["status"] == "complete"
    assert m["summary"]["episodes_done"] == 2
    assert "engine" in m["config"] and "_target_" not in m["config"]["scenario"]


def test_an_old_run_with_other_engine_settings_is_refused(tmp_path):
    _run(tmp_path / "run", "dialogue", 1)
    _old_layout(tmp_path / "run", "scenarios.dialogue.DialogueScenario", "round_robin",
                max_steps=50)
    with pytest.raises(ValueError, match=r"different config \(keys \['engine'\]\)"):
        _run(tmp_path / "run", "dialogue", 2)
