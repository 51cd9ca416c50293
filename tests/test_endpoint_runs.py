"""Whole runs against a local OpenAI-compatible endpoint through the litellm backend:
a warm-cache sweep re-run with the endpoint stopped, and a flaky endpoint (20% faults)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from simlab.events import WALL_CLOCK_COLUMNS
from simlab.store import load_run

pytest.importorskip("litellm")
from servers.fake_openai import serve, stats

TESTS = Path(__file__).resolve().parent


def simlab(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "simlab.cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def _litellm(url: str, *extra: str) -> list[str]:
    return ["backend=litellm", "backend.model=openai/fake-model", f"backend.api_base={url}",
            "progress=false", *extra]


def _runs(sweep: Path) -> dict[str, Path]:
    return {p.parent.name: p.parent for p in sweep.glob("*/manifest.json")}


def test_warm_cache_sweep_rerun_makes_no_calls_and_identical_events(tmp_path):
    cache = tmp_path / "cache.sqlite"
    sweep = ["seed=0,1", "projection=egocentric,concat", "episodes=2",
             f"backend.cache.path={cache}"]
    with serve(subprocess_=True) as url:
        cold = simlab("-m", *_litellm(url, *sweep, f"hydra.sweep.dir={tmp_path}/cold"))
        assert cold.returncode == 0, cold.stderr
        served = stats(url)["requests"]
    assert served > 0
    # the endpoint is gone now: any call would fail
    warm = simlab("-m", *_litellm(url, *sweep, f"hydra.sweep.dir={tmp_path}/warm"))
    assert warm.returncode == 0, warm.stderr
    cold_runs, warm_runs = _runs(tmp_path / "cold"), _runs(tmp_path / "warm")
    assert len(cold_runs) == 4 and set(cold_runs) == set(warm_runs)
    for job, cold_dir in cold_runs.items():
        manifest = json.loads((warm_runs[job] / "manifest.json").read_text())
        bstats = manifest["backend_stats"]
        assert bstats["requests"] == bstats["cache_hits"] > 0, bstats
        assert manifest["summary"]["failures"] == 0
        a = load_run(cold_dir).events.drop(list(WALL_CLOCK_COLUMNS))
        b = load_run(warm_runs[job]).events.drop(list(WALL_CLOCK_COLUMNS))
        assert a.height > 0 and a.equals(b), job


def test_flaky_endpoint_at_20_percent_faults_loses_nothing(tmp_path):
    n = 6
    with serve(subprocess_=True, fault_rate=0.2, seed=3, hang_s=3.0) as url:
        proc = simlab(*_litellm(
            url, f"episodes={n}", "backend.timeout_s=1", "backend.retry.initial_s=0.01",
            "backend.retry.max_s=0.05", "backend.retry.max_attempts=3",
            "backend.cache.enabled=false", f"hydra.run.dir={tmp_path}/run"))
        served = stats(url)
    assert proc.returncode == 0, proc.stderr
    assert sum(served["faults"].values()) > 0, served  # faults really happened
    run = load_run(tmp_path / "run")
    eps, events = run.episodes, run.events
    assert eps.height == n and eps["episode_id"].n_unique() == n  # none lost or duplicated
    assert events.select("episode_id", "seq").is_duplicated().sum() == 0
    for ep in eps.iter_rows(named=True):
        mine = events.filter(pl.col("episode_id") == ep["episode_id"])
        assert mine.filter(pl.col("kind") == "utterance").height == ep["n_turns"]
        assert mine.filter(pl.col("kind") == "failure").height == ep["n_failures"]
        assert ep["termination_reason"] in ("max_turns", "natural_close", "too_many_failures")
    fails = events.filter(pl.col("kind") == "failure")
    assert all(c.startswith("backend error: ") for c in fails["content"])
    retried = events.filter(pl.col("attempts") > 1)
    assert retried.height > 0  # transient faults were retried, and most then succeeded
    manifest = run.manifest
    assert manifest["status"] == "complete"
    assert manifest["backend_stats"]["retry"]["retried_requests"] > 0
