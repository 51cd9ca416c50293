"""Benchmark: episodes per minute, local executor against executor=ray (issue 17).

Side by side in one process, on one Ray instance started here once (its start is timed
apart, since a cluster is started once for many runs):
- the embedded model: ``--episodes`` dialogues with the local executor (2 threads), Ray
  with 1 worker (2 threads) and Ray with 2 workers (1 thread each), so the cores are
  never oversubscribed; each run's own wall time includes its workers' model loads;
- Ray's overhead per task: ``--mock-episodes`` mock dialogues, local against one Ray
  worker, so the difference over the episodes is what Ray adds to each.
Every run must give the same events as the local one; the benchmark checks it.

    python benchmarks/bench_executor.py [--episodes 6] [--mock-episodes 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def timed_run(run_dir: Path, *overrides: str) -> tuple[float, object]:
    from simlab.cli.compose import compose
    from simlab.events import WALL_CLOCK_COLUMNS
    from simlab.runner import run
    from simlab.store import load_run

    cfg = compose([*overrides, "progress=false", "backend.cache.enabled=false"])
    t0 = time.perf_counter()
    summary = run(cfg, run_dir)
    wall = time.perf_counter() - t0
    assert summary.episodes_run > 0
    return wall, load_run(run_dir).events.drop(list(WALL_CLOCK_COLUMNS))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument("--mock-episodes", type=int, default=100)
    args = ap.parse_args()
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    print(f"ray.init (a local Ray, {os.cpu_count()} CPUs): {time.perf_counter() - t0:.1f} s")
    tmp = Path(tempfile.mkdtemp(prefix="bench-executor-"))

    n = args.mock_episodes
    mock = ["backend=mock", f"episodes={n}"]
    one_worker = ["executor=ray", "executor.workers=1"]
    local_s, local_ev = timed_run(tmp / "mock-local", *mock)
    ray_s, ray_ev = timed_run(tmp / "mock-ray", *mock, *one_worker)
    first_s, _ = timed_run(tmp / "mock-ray-1", "backend=mock", "episodes=1", *one_worker)
    assert local_ev.equals(ray_ev), "mock: Ray gave other events than local"
    per_task = ((ray_s - first_s) - local_s * (n - 1) / n) / (n - 1)
    print(f"\nmock backend, {n} dialogue episodes ({local_ev.height} events), one at a time")
    print(f"  local executor        {local_s:7.2f} s   {local_s / n * 1000:7.1f} ms/episode")
    print(f"  ray, 1 worker         {ray_s:7.2f} s   {ray_s / n * 1000:7.1f} ms/episode")
    print(f"  ray, 1 worker, 1 ep.  {first_s:7.2f} s   (the run's fixed cost: worker start)")
    print(f"  Ray's overhead per task, past the first: {per_task * 1000:.1f} ms")

    e = args.episodes
    rows = []
    for label, extra in [
        ("local executor, 2 threads", ["backend.n_threads=2"]),
        ("ray, 1 worker x 2 threads", ["executor=ray", "executor.workers=1",
                                       "executor.num_cpus=2", "backend.n_threads=2"]),
        ("ray, 2 workers x 1 thread", ["executor=ray", "executor.workers=2",
                                       "executor.num_cpus=1", "backend.n_threads=1"]),
    ]:
        wall, events = timed_run(tmp / label.split(",")[0].replace(" ", "-") /
                                 label.split(", ")[1].replace(" ", ""),
                                 f"episodes={e}", *extra)
        rows.append((label, wall, events))
    base = rows[0][2]
    print(f"\nembedded model (SmolLM2-135M), {e} dialogue episodes "
          f"({base.filter(kind='utterance').height} turns)")
    for label, wall, events in rows:
        same = "same events" if events.equals(base) else "OTHER EVENTS"
        print(f"  {label:27s} {wall:7.1f} s   {e / wall * 60:5.2f} episodes/min   "
              f"{rows[0][1] / wall:4.2f}x   {same}")
    ray.shutdown()


if __name__ == "__main__":
    main()
