"""A run SIGKILLed mid-episode leaves only complete episodes, and resumes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from simlab.events import WALL_CLOCK_COLUMNS
from simlab.store import load_run

TESTS = Path(__file__).resolve().parent
ARGS = ["backend=mock", "backend._target_=_slow_backend.SlowMock", "progress=false",
        "episodes=3"]


def _simlab(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(
        [sys.executable, "-m", "simlab.cli.main", *ARGS, f"hydra.run.dir={run_dir}", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_killed_run_keeps_whole_episodes_and_resumes_to_the_same_events(tmp_path):
    run_dir = tmp_path / "run"
    proc = _simlab(run_dir)
    deadline = time.time() + 120
    while time.time() < deadline and not list((run_dir / "episodes").glob("ep*")):
        time.sleep(0.05)
    time.sleep(0.25)  # well into the next episode (10 turns x 50 ms)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    staged = list((run_dir / ".staging").glob("*")) if (run_dir / ".staging").exists() else []
    tables = load_run(run_dir)
    assert 1 <= tables.episodes.height < 3, "kill landed outside the second episode"
    for ep in tables.episodes.iter_rows(named=True):  # every stored episode is whole
        events = tables.events.filter(pl.col("episode_id") == ep["episode_id"])
        assert events.filter(pl.col("kind") == "utterance").height == ep["n_turns"] == 10
    assert staged == [] or all(p.name not in tables.episodes["episode_id"] for p in staged)

    resumed = _simlab(run_dir)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert f"({tables.episodes.height} already done)" in out

    fresh = _simlab(tmp_path / "fresh")
    fresh.communicate(timeout=120)
    a = load_run(run_dir).events.drop(list(WALL_CLOCK_COLUMNS))
    b = load_run(tmp_path / "fresh").events.drop(list(WALL_CLOCK_COLUMNS))
    assert a.height > 0 and a.equals(b)
