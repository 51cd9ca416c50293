"""Benchmark: the economy and opinion scenarios at population scale against a slow endpoint.

Issue 7's acceptance: 1,000 agents × 10 periods against a local OpenAI-compatible endpoint
answering in 200 ms, with the backend's in-flight cap at 256, finish within 1.3 × the
ideal wall time ``batches × ceil(N / cap) × latency`` — i.e. the engine, the scenario's
rules and metrics, and the client are not the bottleneck.

Each period is one batch of structured actions (JSON schema: hours on the grid for the
economy; a Likert stance and a post for the opinion scenario), sent through
``LiteLLMBackend`` (its public config only: model, api_base, max_in_flight, timeout,
transport) by ``run_episode`` as the CLI runs it. Rule planners answer locally, so the
economy's planning steps cost no latency. The provider runs in its own process: the lean
``benchmarks/latency_server.py`` that ``bench_throughput.py`` uses when it is present,
else ``tests/servers/fake_openai.py`` (``--server fake``). Each scenario runs
``--repeats`` times on one warm server and the median is reported, with CPU seconds of
this process (engine + client) and of the server, and the machine's load average.

    python benchmarks/bench_population_step.py [--agents 1000 --ticks 10 --latency 0.2
        --cap 256 --repeats 3 --scenario economy|opinion|both --server lean|fake]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dialogue import machine
from bench_throughput import TimedBackend
from servers.fake_openai import serve, stats

from scenarios.economy import EconomyConfig, EconomyScenario
from scenarios.opinion import OpinionConfig, OpinionScenario
from simlab.events import FAILURE
from simlab.personas.model import Persona
from simlab.scenario import Scenario
from simlab.scheduler import TickEngine, run_episode
from simlab.scheduler.settings import EngineConfig

LEAN = importlib.util.find_spec("latency_server") is not None


def population(n: int) -> list[Persona]:
    """Census-shaped personas: incomes from $0 to $250k, usual hours 0–60."""
    return [
        Persona(id=f"p{i}", name=f"Person {i}", age=18 + i % 60, description="A resident.",
                gender=("woman", "man")[i % 2], occupation="clerk",
                attributes={"income_usd": (i * 7919) % 250_000, "hours_per_week": (i % 7) * 10})
        for i in range(n)
    ]


def make(kind: str, n: int, ticks: int, survey_every: int) -> Scenario:
    if kind == "economy":
        config = EconomyConfig(n_workers=n, ticks=ticks, tax_year=5, planner="saez")
        return EconomyScenario.create(config, population(n), episode_id="bench", seed=7)
    config = OpinionConfig(n_agents=n, ticks=ticks, survey_every=survey_every, degree=4,
                           max_tokens=48)
    return OpinionScenario.create(config, population(n), episode_id="bench", seed=7)


def engine(sc: Scenario, backend: TimedBackend, max_steps: int) -> TickEngine:
    """The engine as the phased scenarios' specs configure it (no consecutive-failure stop;
    their phase plan is their schedule)."""
    return TickEngine(sc, backend, settings=EngineConfig(max_steps=max_steps,
                                                         max_consecutive_failures=10**9))


def batches(sc: Scenario) -> int:
    """Backend batches in the episode: every phase but the rule planner's."""
    return sum(1 for p in sc.phases if p.kind != "plan")  # type: ignore[attr-defined]


def one(backend: TimedBackend, url: str, args: argparse.Namespace, kind: str) -> dict:
    sc = make(kind, args.agents, args.ticks, args.survey_every)
    backend.in_generate = 0.0
    stats(url, reset=True)
    cpu0, main0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    run_episode(engine(sc, backend, 10_000))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    main = time.thread_time() - main0  # engine + scenario (the client runs on its own thread)
    t1 = time.perf_counter()
    rows = sum(len(v) for v in sc.tables().values())
    tables_s = time.perf_counter() - t1
    st = stats(url)
    return {"wall": wall, "gen": backend.in_generate, "cpu": cpu, "main": main, "server": st,
            "batches": batches(sc), "failures": sum(1 for e in sc.log if e.kind == FAILURE),
            "events": len(sc.log), "rows": rows, "tables_s": tables_s,
            "reason": sc.termination_reason, "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--ticks", type=int, default=10)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--cap", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--survey-every", type=int, default=0,
                   help="opinion: a survey wave every W days (0 = none; waves are batches)")
    p.add_argument("--scenario", choices=("economy", "opinion", "both"), default="both")
    p.add_argument("--server", choices=("lean", "fake"), default="lean" if LEAN else "fake")
    p.add_argument("--transport", default="auto", choices=("auto", "litellm", "direct"))
    args = p.parse_args(argv)
    if args.server == "lean":
        import latency_server

        server = latency_server.serve(args.latency)
    else:
        server = serve(latency_s=args.latency, subprocess_=True)
    kinds = ("economy", "opinion") if args.scenario == "both" else (args.scenario,)
    waves = math.ceil(args.agents / args.cap)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} (other tenants)")
    print(f"agents {args.agents} × ticks {args.ticks}, latency {args.latency} s, cap "
          f"{args.cap}, server {args.server}, transport {args.transport}, "
          f"median of {args.repeats}")
    with server as url:
        backend = TimedBackend("openai/fake", api_base=url, max_in_flight=args.cap,
                               timeout_s=30.0, transport=args.transport)
        try:
            run_episode(engine(make("economy", min(args.agents, args.cap), 1, 0), backend,
                               10))  # warm: connections, imports
            for kind in kinds:
                runs = [one(backend, url, args, kind) for _ in range(args.repeats)]
                report(kind, runs, waves, args)
        finally:
            backend.close()


def report(kind: str, runs: list[dict], waves: int, args: argparse.Namespace) -> None:
    mid = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
    ideal = mid["batches"] * waves * args.latency
    walls = ", ".join(f"{r['wall']:.2f}" for r in runs)
    calls = mid["server"]["requests"]
    print(f"{kind}: {mid['batches']} batches, ideal {ideal:.2f} s; wall {mid['wall']:.2f} s "
          f"(runs {walls}), ratio {mid['wall'] / ideal:.3f} (target <= 1.3)")
    print(f"  in backend.generate {mid['gen']:.2f} s, engine + scenario "
          f"{mid['wall'] - mid['gen']:.2f} s; cpu this process {mid['cpu']:.2f} s "
          f"({mid['cpu'] / max(calls, 1) * 1000:.2f} ms/call; main thread, i.e. engine + "
          f"scenario, {mid['main']:.2f} s), server {mid['server']['cpu_s']:.2f} s")
    print(f"  server: {calls} requests, peak concurrency {mid['server']['peak_concurrency']}; "
          f"failures {mid['failures']}; {mid['events']} events; tables {mid['rows']} rows "
          f"in {mid['tables_s'] * 1000:.0f} ms; ended {mid['reason']}; "
          f"load avg {statistics.mean(r['load'] for r in runs):.2f}")


if __name__ == "__main__":
    main()
