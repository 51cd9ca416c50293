"""Benchmark: what in-episode checkpoints cost, and how fast a killed run resumes (issue 14).

Overhead: one 1,000-agent rule economy episode (Saez planner, 200 work periods, a tax
year of 5: 240 ticks; rule workers answer locally, so this is the engine, the scenario
and the checkpoints alone, the worst case for relative overhead) is run with
``engine.checkpoint_every`` = 0 (none) and K = 10, 25, 50, in one process, in
alternating order, ``--repeats`` times; the medians are compared. The target is at most
5 % added.

Resume: the CLI runs a 200-tick economy of 3 LLM workers on a slowed mock
(``tests/_slow_backend.py``), checkpointing every 50 ticks; it is killed with SIGKILL as
soon as the tick-150 checkpoint is on disk, and restarted. Reported: the time from the
restart to its first backend call, of which restoring the checkpoint is a part (also
timed in process, for the 1,000-agent episode's tick-150 checkpoint).

    python benchmarks/bench_checkpoint.py [--agents 1000 --periods 200 --repeats 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dialogue import machine
from bench_population_step import population

from scenarios.economy import EconomyConfig, EconomyScenario
from simlab.backends.mock import MockBackend
from simlab.checkpointing import EpisodeCheckpoints
from simlab.scheduler import run_episode
from simlab.scheduler.settings import EngineConfig
from simlab.store.checkpoint import Checkpoints

ROOT = Path(__file__).resolve().parents[1]
EVERY = (0, 10, 25, 50)


def one(args: argparse.Namespace, every: int, run_dir: Path) -> tuple[float, int, int, float]:
    """(wall seconds, checkpoints written, bytes on disk at the end, seconds spent
    writing checkpoints) for one episode."""
    config = EconomyConfig(n_workers=args.agents, ticks=args.periods, tax_year=5,
                           planner="saez", worker_policy="rule")
    settings = EngineConfig(max_steps=10_000, checkpoint_every=every)
    files = EpisodeCheckpoints(run_dir, settings)
    written: list[float] = []
    save = files.save

    def timed(engine, tick):
        t = time.perf_counter()
        save(engine, tick)
        written.append(time.perf_counter() - t)

    files.save = timed  # type: ignore[method-assign]
    t0 = time.perf_counter()
    engine, _ = files.engine_for(
        "bench", lambda: EconomyScenario.create(config, population(args.agents),
                                                episode_id="bench", seed=7), MockBackend())
    engine.checkpoint = files.save
    run_episode(engine)
    wall = time.perf_counter() - t0
    where = files.files.path("bench")
    size = sum(p.stat().st_size for p in where.iterdir()) if where.is_dir() else 0
    return wall, len(written), size, sum(written)


def restore_time(run_dir: Path) -> tuple[float, int]:
    """Seconds to read and restore the newest checkpoint in ``run_dir``; its tick."""
    settings = EngineConfig(max_steps=10_000, checkpoint_every=0)
    t0 = time.perf_counter()
    _, tick = EpisodeCheckpoints(run_dir, settings).engine_for(
        "bench", lambda: None, MockBackend())  # type: ignore[arg-type,return-value]
    return time.perf_counter() - t0, tick


def resume_after_kill(tmp: Path) -> dict:
    run_dir = tmp / "killed"
    first_call = tmp / "first_call"
    args = [sys.executable, "-m", "simlab.cli.main", "scenario=economy",
            "scenario.n_workers=3", "scenario.ticks=182", "scenario.tax_year=10",
            "backend=mock", "backend._target_=_first_call.FirstCallMock", "episodes=1",
            "progress=false", "engine.checkpoint_every=50", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"),
                                                         str(ROOT / "benchmarks")]),
           "SIMLAB_FIRST_CALL": str(first_call)}
    live = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    files = Checkpoints(run_dir)
    while (found := files.read("ep00000")) is None or found.tick < 150:
        time.sleep(0.005)
    os.kill(live.pid, signal.SIGKILL)
    live.wait()
    first_call.unlink(missing_ok=True)
    t0 = time.time()
    resumed = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    first = float(first_call.read_text())
    return {"tick": found.tick, "to_first_call": first - t0,
            "resumed": "resumes at tick 150" in resumed.stderr}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--periods", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    print(f"machine: {machine()}; load avg {os.getloadavg()[0]:.2f}")
    walls: dict[int, list[float]] = {k: [] for k in EVERY}
    info: dict[int, tuple[int, int]] = {}
    saving: dict[int, list[float]] = {k: [] for k in EVERY}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = EVERY if r % 2 == 0 else tuple(reversed(EVERY))
            for every in order:
                run_dir = Path(tmp) / f"k{every}-{r}"
                wall, n, size, saved = one(args, every, run_dir)
                walls[every].append(wall)
                saving[every].append(saved / wall)
                info[every] = (n, size)
                print(f"  repeat {r}: checkpoint_every={every:3d}: {wall:6.2f} s "
                      f"({n} checkpoints, {size / 1e6:.1f} MB, {saved:.2f} s writing them)",
                      flush=True)
        base = statistics.median(walls[0])
        print(f"{args.agents} rule agents x {args.periods} periods; median of {args.repeats}:")
        for every in EVERY:
            med = statistics.median(walls[every])
            n, size = info[every]
            added = "" if not every else (
                f"  wall vs none {(med / base - 1) * 100:+.1f} %, time in checkpoints "
                f"{statistics.median(saving[every]) * 100:.1f} % of the run")
            print(f"  checkpoint_every={every:3d}: {med:6.2f} s  {n:3d} checkpoints, "
                  f"{size / 1e6:6.1f} MB on disk{added}")
        # a tick-150 checkpoint of the big episode, restored in process
        ckpt = Path(tmp) / "at150"
        args150 = argparse.Namespace(**{**vars(args), "periods": 130})  # 130 + 26 plan ticks
        one(args150, 150, ckpt)
        seconds, tick = restore_time(ckpt)
        print(f"restore of the {args.agents}-agent tick-{tick} checkpoint: {seconds:.2f} s")
        r = resume_after_kill(Path(tmp))
        print(f"kill -9 after the tick-{r['tick']} checkpoint, restart -> first new backend "
              f"call: {r['to_first_call']:.2f} s (process start-up included); resumed "
              f"there: {r['resumed']}")


if __name__ == "__main__":
    main()
