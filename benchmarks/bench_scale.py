"""Benchmark: how many agents one process holds in a population tick (issue 17, part 4).

The opinion scenario with rule agents (DeGroot averaging, answered locally) and the mock
backend, so what is measured is simlab itself: the engine, projection, event log, the
scenario's rules and metrics. Each size runs in its own process, so its peak RSS is its
own. Prints wall time, time per agent-tick, peak RSS and memory per agent.

    python benchmarks/bench_scale.py [--agents 10000,100000] [--ticks 10]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one(n: int, ticks: int) -> dict:
    """One episode of ``n`` rule agents × ``ticks`` days, in this process."""
    from bench_population_step import engine, population

    from scenarios.opinion import OpinionConfig, OpinionScenario
    from simlab.backends.mock import MockBackend
    from simlab.scheduler import run_episode

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    people = population(n)
    config = OpinionConfig(n_agents=n, ticks=ticks, survey_every=0, degree=4,
                           agent_policy="rule")
    sc = OpinionScenario.create(config, people, episode_id="bench", seed=7)
    built = time.perf_counter() - t0
    t1 = time.perf_counter()
    run_episode(engine(sc, MockBackend(), 10 * ticks + 10))
    wall = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"agents": n, "ticks": ticks, "build_s": built, "run_s": wall,
            "events": len(sc.log), "peak_rss_mb": peak, "start_rss_mb": base,
            "us_per_agent_tick": wall / (n * ticks) * 1e6,
            "kb_per_agent": (peak - base) * 1024 / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", default="10000,100000")
    ap.add_argument("--ticks", type=int, default=10)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process's size
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.ticks)))
        return
    print("agents   ticks  build    run      per agent-tick  events      peak RSS   per agent")
    for n in (int(x) for x in args.agents.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--ticks",
                              str(args.ticks)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n:7d}  {r['ticks']:5d}  {r['build_s']:6.1f} s {r['run_s']:7.1f} s  "
              f"{r['us_per_agent_tick']:9.1f} µs  {r['events']:10d}  "
              f"{r['peak_rss_mb']:7.0f} MB  {r['kb_per_agent']:6.1f} KB", flush=True)


if __name__ == "__main__":
    main()
