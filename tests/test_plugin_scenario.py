"""A third-party scenario needs no edit to simlab: the toy package under
``tests/plugins/toy_scenario`` registers through its entry point and runs from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from simlab.store import load_run

PLUGIN = Path(__file__).resolve().parent / "plugins" / "toy_scenario"


def installed(site: Path) -> dict[str, str]:
    """The environment of a Python where the toy package is installed, as pip would
    install it: the package on the path and a ``.dist-info`` with its entry points."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    dist = site / f"toy_scenario-{project['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, points in project["entry-points"].items():
        lines += [f"[{group}]", *(f"{k} = {v}" for k, v in points.items()), ""]
    (dist / "entry_points.txt").write_text("\n".join(lines))
    path = [str(site), str(PLUGIN), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}


def simlab(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simlab.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_toy_scenario_is_listed_and_runs_from_the_cli(tmp_path: Path) -> None:
    env = installed(tmp_path / "site")
    work = tmp_path / "elsewhere"  # not the project root: nothing found by cwd
    work.mkdir()
    listing = simlab(env, work, "scenarios")
    assert listing.returncode == 0, listing.stderr
    assert "  toy  " in listing.stdout
    assert "Personas take turns saying one line about a topic." in listing.stdout

    helped = simlab(env, work, "--help")
    assert helped.returncode == 0, helped.stderr
    scenario_line = next(line for line in helped.stdout.splitlines()
                         if line.startswith("scenario:"))
    assert "toy" in scenario_line.split(", ") or " toy," in scenario_line

    done = simlab(env, work, "scenario=toy", "backend=mock", "episodes=1", "progress=false",
                  "scenario.topic=tea", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr
    run = load_run(tmp_path / "run")
    assert run.manifest["status"] == "complete"
    assert run.manifest["config"]["memory"]["policy"] == "summary"  # the toy's default
    assert run.manifest["config"]["scenario"] == {
        "name": "toy", "n_agents": 2, "rounds": 2, "topic": "tea", "max_tokens": 32}
    episode = run.episodes.row(0, named=True)
    assert (episode["n_turns"], episode["termination_reason"]) == (4, "rounds_done")
    kinds = run.events["kind"].to_list()
    assert kinds == ["narration"] + ["utterance"] * 4
    assert run.events["content"][0] == "Everyone is talking about tea."

    bad = simlab(env, work, "scenario=toy", "backend=mock", "scenario.rounds=0",
                 f"hydra.run.dir={tmp_path / 'bad'}")
    assert bad.returncode != 0
    assert "scenario.rounds: must be >= 1, got 0" in bad.stderr
