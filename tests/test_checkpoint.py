"""Checkpoints inside an episode: whole or ignored, restored exactly, and a run killed
with ``kill -9`` at tick 150 of 200 resumes there with identical events and no backend
call made again for the ticks before its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import compose

from simlab.backends.mock import MockBackend
from simlab.population import build_population
from simlab.runner import engine_config, episode_seeds, make_scenario, run
from simlab.scheduler.engine import TickEngine
from simlab.scheduler.graph import run_episode
from simlab.scheduler.snapshot import capture, marks, restore
from simlab.store import load_run
from simlab.store.checkpoint import Checkpoints
from simlab.store.lock import is_locked

TESTS = Path(__file__).resolve().parent
# 182 work periods and 18 tax years: 200 ticks, ended by the scenario itself
ECONOMY = ["scenario=economy", "scenario.n_workers=3", "scenario.ticks=182",
           "scenario.tax_year=10", "backend=mock", "episodes=1", "progress=false"]


# ------------------------------------------------------------------- the files
def test_a_checkpoint_round_trips_and_a_torn_one_is_ignored(tmp_path, caplog):
    files = Checkpoints(tmp_path)
    assert files.read("ep00000") is None
    files.write("ep00000", 25, b"state at 25", b"events 0-3", (0, 3), seed=7)
    files.write("ep00000", 50, b"state at 50", b"events 3-5", (3, 5), seed=7)
    found = Checkpoints(tmp_path).read("ep00000")  # as a new invocation reads it
    assert (found.tick, found.state, found.segments) == (50, b"state at 50",
                                                         [b"events 0-3", b"events 3-5"])
    assert found.header["seed"] == 7
    where = files.path("ep00000")
    assert sorted(p.name for p in where.iterdir()) == [
        "segment-000000025.seg", "segment-000000050.seg", "state.ckpt"]

    segment = where / "segment-000000050.seg"
    raw = segment.read_bytes()
    segment.write_bytes(raw[:-3])  # torn: shorter than its header says
    assert files.read("ep00000") is None
    assert "truncated or corrupt" in caplog.text and "restarts at tick 0" in caplog.text
    segment.write_bytes(raw.replace(b"events", b"EVENTS"))  # same size, other bytes
    assert files.read("ep00000") is None
    segment.unlink()
    assert files.read("ep00000") is None and "is missing" in caplog.text
    segment.write_bytes(raw)
    (where / "state.ckpt").write_bytes(b"not a checkpoint")
    assert files.read("ep00000") is None
    (where / ".state.ckpt.123.tmp").write_bytes(b"half")  # a killed writer's
    files.clear_partial()
    assert not (where / ".state.ckpt.123.tmp").exists()
    files.drop("ep00000")
    assert not where.exists()


# ---------------------------------------------------------- state, in process
def _scenario(cfg):
    rng, seeds = episode_seeds(cfg.seed, 1)
    population = build_population(cfg.population, rng, MockBackend())
    return make_scenario(cfg, population, 0, seeds[0])


@pytest.mark.parametrize("scenario", ["economy", "opinion", "auction", "dialogue"])
def test_a_restored_engine_continues_exactly(scenario):
    extra = {"economy": ECONOMY[1:4], "opinion": ["scenario.ticks=12"],
             "auction": ["scenario.n_items=3"], "dialogue": ["scenario.min_turns=10"]}
    cfg = compose(f"scenario={scenario}", "backend=mock", *extra[scenario])
    settings = engine_config(cfg)
    straight = TickEngine(_scenario(cfg), MockBackend(), settings=settings)
    run_episode(straight)

    first = MockBackend()
    engine = TickEngine(_scenario(cfg), first, settings=settings)
    for step in range(4):
        engine.tick(step)
        if step == 1:
            _, head = capture(engine)  # ticks 0-1, as the first checkpoint writes them
            since = marks(engine.scenario)
    state, tail = capture(engine, since)
    second = MockBackend()
    resumed = restore(state, [head, tail], second, settings=settings)
    run_episode(resumed, 4)
    assert [e for e in resumed.scenario.log] == [e for e in straight.scenario.log]
    assert len(first.calls) + len(second.calls) == len(straight.backend.calls)
    assert resumed.scenario.termination_reason == straight.scenario.termination_reason
    same = [json.dumps(x.scenario.tables(), sort_keys=True, default=str)  # NaN == NaN
            for x in (resumed, straight)]
    assert same[0] == same[1]


def test_capture_leaves_the_engine_as_it_was():
    cfg = compose(*ECONOMY[:4], "backend=mock")
    backend = MockBackend()
    engine = TickEngine(_scenario(cfg), backend, settings=engine_config(cfg))
    engine.tick(0)
    capture(engine)
    assert engine.scenario.backend is engine.caller and engine.caller.inner is backend
    assert all(m.counter is backend for m in engine._memories.values())


# ------------------------------------------------------------ kill -9, resume
def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


@pytest.mark.slow
def test_kill_at_tick_150_resumes_there_with_identical_events(tmp_path):
    clean = tmp_path / "clean"
    run(compose(*ECONOMY), clean)
    run_dir = tmp_path / "killed"
    args = [sys.executable, "-m", "simlab.cli.main", *ECONOMY, "engine.checkpoint_every=50",
            "backend._target_=_slow_backend.SlowMock", f"hydra.run.dir={run_dir}"]
    live = subprocess.Popen(args, env=_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    files = Checkpoints(run_dir)
    try:
        while True:  # until the checkpoint at tick 150 is on disk, then kill it at once
            found = files.read("ep00000")
            if found is not None and found.tick == 150:
                break
            assert live.poll() is None, live.stderr.read()
            time.sleep(0.01)
        os.kill(live.pid, signal.SIGKILL)
    finally:
        live.wait(60)
    assert live.returncode == -signal.SIGKILL
    assert not is_locked(run_dir)  # the OS let go of the dead process's lock

    resumed = subprocess.run(args, env=_env(), stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "episode ep00000 resumes at tick 150" in resumed.stderr

    events = load_run(run_dir).events.drop("latency_s")
    assert events.equals(load_run(clean).events.drop("latency_s"))
    # the resumed invocation asked the model only for ticks 150-199: one request per
    # model-made event there (the mock's replies are all valid: no re-asks)
    import json

    manifest = json.loads((run_dir / "manifest.json").read_text())
    requests = manifest["invocations"][-1]["backend_stats"]["requests"]
    made = events.filter(events["attempts"] > 0)
    assert requests == made.filter(made["step"] >= 150).height > 0
    assert not files.path("ep00000").exists()  # the committed episode's is gone
    assert not (run_dir / ".staging" / "ep00000").exists()


@pytest.mark.parametrize("policy", ["summary", "retrieval"])
def test_memory_state_survives_a_restore(policy):
    from simlab.context.memory import MemoryConfig

    cfg = compose("scenario=opinion", "backend=mock", "scenario.ticks=30",
                  "scenario.n_agents=6")
    settings, memory = engine_config(cfg), MemoryConfig(policy=policy)
    straight = TickEngine(_scenario(cfg), MockBackend(context_window=360), settings=settings,
                          memory=memory)
    run_episode(straight)
    engine = TickEngine(_scenario(cfg), MockBackend(context_window=360), settings=settings,
                        memory=memory)
    for step in range(20):
        engine.tick(step)
    state, events = capture(engine)
    resumed = restore(state, [events], MockBackend(context_window=360), settings=settings,
                      memory=memory)
    run_episode(resumed, 20)
    assert list(resumed.scenario.log) == list(straight.scenario.log)
    kinds = {e.kind for e in straight.scenario.log}
    assert ("memory" in kinds) == (policy == "summary")


def test_append_only_state_is_emptied_like_for_like():
    from collections import defaultdict

    from simlab.scheduler.snapshot import _emptied

    rows = defaultdict(list, {"ticks": [1, 2]})
    empty = _emptied("rows", rows)
    assert isinstance(empty, defaultdict) and dict(empty) == {"ticks": []}
    empty["new"].append(3)  # still a defaultdict after a restore
    assert rows == {"ticks": [1, 2]}
    assert _emptied("history", [1, 2]) == []
    with pytest.raises(TypeError, match="append_only attribute 'history'"):
        _emptied("history", (1, 2))
