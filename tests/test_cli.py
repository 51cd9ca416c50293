"""The ``simlab`` command end to end on the mock backend: run, show, graph, sweep, resume,
determinism and config errors. Runs in subprocesses, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from simlab.events import WALL_CLOCK_COLUMNS
from simlab.store import load_run

SIMLAB = [sys.executable, "-m", "simlab.cli.main"]


def simlab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([*SIMLAB, *args], capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"simlab {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _events(run_dir: Path) -> pl.DataFrame:
    return load_run(run_dir).events.drop(list(WALL_CLOCK_COLUMNS))


def test_run_writes_a_complete_store_and_show_prints_named_transcripts(tmp_path):
    out = simlab("backend=mock", "progress=false", f"hydra.run.dir={tmp_path}/run")
    run = tmp_path / "run"
    assert "3 episodes" in out.stdout
    tables = load_run(run)
    assert tables.episodes.height == 3
    assert set(tables.episodes["termination_reason"]) <= {"natural_close", "max_turns"}
    assert (tables.episodes["n_turns"] >= 6).all()
    utter = tables.events.filter(pl.col("kind") == "utterance")
    for col in ("episode_id", "step", "speaker", "audience", "content", "prompt_tokens",
                "completion_tokens", "latency_s", "backend", "model"):
        assert utter[col].null_count() == 0, col
    assert set(utter["backend"]) == {"mock"} and set(utter["model"]) == {"mock/mock-1"}
    assert tables.agents.height == 6
    assert {"name", "role", "description"} <= set(tables.agents.columns)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["status"] == "complete"
    assert manifest["backend"]["model"] == "mock/mock-1"
    assert manifest["config"]["projection"]["name"] == "egocentric"
    assert "llama-cpp-python" in manifest["versions"]

    shown = simlab("show", str(run)).stdout
    for name in tables.agents["name"]:
        assert name in shown
    assert shown.count("=== Episode") == 3


def test_graph_prints_mermaid():
    text = simlab("graph").stdout
    assert text.lstrip().startswith("---") or "graph TD" in text
    for node in ("schedule", "project", "act", "resolve", "record"):
        assert node in text


def test_same_seed_same_events_different_seed_different(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        simlab("backend=mock", "progress=false", f"seed={seed}", f"hydra.run.dir={tmp_path}/{name}")
    a, b, c = (_events(tmp_path / n) for n in "abc")
    assert a.equals(b)
    assert not a.equals(c)


def test_sweep_writes_one_run_dir_per_job(tmp_path):
    simlab("-m", "seed=0,1", "projection=egocentric,concat", "backend=mock", "episodes=1",
           "progress=false", f"hydra.sweep.dir={tmp_path}/sweep")
    runs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/manifest.json"))
    assert len(runs) == 4
    combos = set()
    for run in runs:
        m = json.loads((run / "manifest.json").read_text())
        combos.add((m["seed"], m["config"]["projection"]["name"]))
        assert load_run(run).episodes.height == 1
    assert combos == {(0, "egocentric"), (0, "concat"), (1, "egocentric"), (1, "concat")}


def test_rerun_into_the_same_dir_resumes_without_redoing(tmp_path):
    run = f"hydra.run.dir={tmp_path}/run"
    simlab("backend=mock", "progress=false", "episodes=2", run)
    first = _events(tmp_path / "run")
    out = simlab("backend=mock", "progress=false", "episodes=3", run)
    assert "1 episodes (2 already done)" in out.stdout
    tables = load_run(tmp_path / "run")
    assert tables.episodes.height == 3
    # the finished episodes were not touched, and the new one equals a fresh 3-episode run
    assert _events(tmp_path / "run").filter(pl.col("episode_id") != "ep00002").equals(first)
    simlab("backend=mock", "progress=false", "episodes=3", f"hydra.run.dir={tmp_path}/fresh")
    assert _events(tmp_path / "fresh").equals(_events(tmp_path / "run"))


def test_resume_with_a_different_config_is_refused(tmp_path):
    run = f"hydra.run.dir={tmp_path}/run"
    simlab("backend=mock", "progress=false", "episodes=1", run)
    proc = simlab("backend=mock", "progress=false", "episodes=1", "seed=5", run, check=False)
    assert proc.returncode == 2
    assert "different config" in proc.stderr and "seed" in proc.stderr


def test_bad_config_exits_with_a_message_naming_the_key(tmp_path):
    proc = simlab("backend=mock", "scenario.mode=trio", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "scenario.mode" in proc.stderr and "trio" in proc.stderr
    proc = simlab("backend=mock", "population=file", f"hydra.run.dir={tmp_path}/x", check=False)
    assert proc.returncode == 2 and "population.path" in proc.stderr
