"""Benchmark: N agents × S simultaneous ticks through the engine and the litellm backend.

Issue 3's acceptance: with a provider answering in ``latency`` seconds and serving any
number of requests at once, a run should take at most 1.2 × the ideal
``S × ceil(N / cap) × latency`` (``cap`` = the backend's in-flight limit), and the
framework should add at most 2 ms per agent-turn (measured at 0 latency: wall / (N × S)).

The provider runs in its own process (so its CPU does not share our GIL):
``benchmarks/latency_server.py`` by default, a lean server that gives the test server's
replies at a fifth of its CPU (on 2 shared cores the provider's CPU is otherwise
charged to simlab), or ``--server fake`` for ``tests/servers/fake_openai.py``. Each agent
makes one call per tick: a trivial scenario on a ring graph with the simultaneous
schedule, run by ``run_episode`` (LangGraph) as the CLI runs it. Each latency is run
``--repeats`` times on one warm server; the median is reported (wall times on a shared
machine are noisy), with CPU seconds per request of this process and of the server.

    python benchmarks/bench_throughput.py [--agents 1000 --ticks 3 --latency 0.2
                                           --cap 256 --transport auto --repeats 5
                                           --server lean|fake --profile]
"""

from __future__ import annotations

import argparse
import cProfile
import math
import os
import pstats
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import latency_server
from bench_dialogue import machine
from latency_server import runqueue_wait_s
from servers.fake_openai import serve, stats

from simlab.agents import PersonaAgent
from simlab.backends.base import ChatRequest, ChatResponse, Message
from simlab.backends.litellm_backend import LiteLLMBackend
from simlab.personas.model import Persona
from simlab.scenario import Scenario
from simlab.scheduler import TickEngine, run_episode
from simlab.scheduler.policies import Simultaneous
from simlab.scheduler.settings import EngineConfig


class TickScenario(Scenario):
    """Everyone speaks every tick; each agent hears its two ring neighbours."""

    name = "bench_ticks"

    def setup(self, population: list[Persona]) -> None:
        keys = [self.add_agent(p, "member").key for p in population]
        self.graph.add_edges_from(zip(keys, keys[1:] + keys[:1], strict=True))
        self.narrate("The market opens. Say one short thing to your neighbours.")

    def system_prompt(self, agent: PersonaAgent) -> str:
        return f"You are {agent.name}, a {agent.persona.occupation}."

    def request_for(
        self, agent: PersonaAgent, messages: tuple[Message, ...], seed: int
    ) -> ChatRequest:
        return ChatRequest(messages=messages, seed=seed, tag=agent.key, max_tokens=16)


def population(n: int) -> list[Persona]:
    return [
        Persona(id=f"a{i}", name=f"Agent {i}", age=20 + i % 50, description="A trader.",
                occupation="trader", goals=("sell high",))
        for i in range(n)
    ]


class TimedBackend(LiteLLMBackend):
    """Adds up the wall time spent inside ``generate`` (the rest is the engine's)."""

    in_generate = 0.0

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        start = time.perf_counter()
        try:
            return super().generate(requests)
        finally:
            self.in_generate += time.perf_counter() - start


def episode(backend: TimedBackend, agents: int, ticks: int) -> tuple[float, TickScenario]:
    sc = TickScenario.create(None, population(agents), episode_id="bench", seed=7)
    backend.in_generate = 0.0
    start = time.perf_counter()
    run_episode(TickEngine(sc, backend, settings=EngineConfig(max_steps=ticks),
                           schedule=Simultaneous()))
    return time.perf_counter() - start, sc


class Run:
    """One timed episode: wall, time in generate, CPU of both processes, what was said.

    ``wait`` is how long simlab's threads were runnable but kept off a CPU by other
    processes (run-queue wait; None where the kernel does not report it).
    """

    def __init__(self, wall: float, gen: float, cpu: float, wait: float | None, st: dict,
                 sc: TickScenario):
        self.wall, self.gen, self.cpu, self.wait, self.st = wall, gen, cpu, wait, st
        self.requests = st["requests"]
        self.said = sum(1 for e in sc.log if e.kind == "utterance")
        self.load = os.getloadavg()[0]


def measure(args: argparse.Namespace, latency: float) -> list[Run]:
    if args.server == "lean":
        server = latency_server.serve(latency)
    else:
        server = serve(latency_s=latency, subprocess_=True)
    with server as url:
        backend = TimedBackend("openai/fake", api_base=url, max_in_flight=args.cap,
                               timeout_s=30.0, transport=args.transport)
        runs = []
        try:
            episode(backend, min(args.agents, args.cap), 1)  # warm: connections, imports
            for _ in range(args.repeats):
                stats(url, reset=True)
                profiler = cProfile.Profile() if args.profile and latency == 0 else None
                if profiler:
                    profiler.enable()
                cpu, wait = time.process_time(), runqueue_wait_s()
                wall, sc = episode(backend, args.agents, args.ticks)
                cpu, after = time.process_time() - cpu, runqueue_wait_s()
                wait = after - wait if wait is not None and after is not None else None
                if profiler:
                    profiler.disable()
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
                runs.append(Run(wall, backend.in_generate, cpu, wait, stats(url), sc))
            return runs
        finally:
            backend.close()


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.wall)[len(runs) // 2]


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--ticks", type=int, default=3)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--cap", type=int, default=256)
    p.add_argument("--transport", default="auto", choices=("auto", "litellm", "direct"))
    p.add_argument("--repeats", type=int, default=5, help="episodes per latency (median)")
    p.add_argument("--server", default="lean", choices=("lean", "fake"),
                   help="lean: benchmarks/latency_server.py; fake: tests/servers/fake_openai")
    p.add_argument("--profile", action="store_true",
                   help="cProfile the 0-latency run (the main thread: the engine)")
    args = p.parse_args(argv)
    n, s = args.agents, args.ticks
    turns = n * s
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} (other tenants)")
    print(f"agents {n} × ticks {s} = {turns} agent-turns, cap {args.cap}, transport "
          f"{args.transport}, server {args.server}, median of {args.repeats}")

    ideal = s * math.ceil(n / args.cap) * args.latency
    runs = measure(args, args.latency)
    m = median_run(runs)
    print(f"latency {args.latency} s: wall {m.wall:.2f} s (runs "
          f"{', '.join(f'{r.wall:.2f}' for r in runs)}), ideal {ideal:.2f} s, "
          f"ratio {m.wall / ideal:.2f} (target <= 1.2)")
    print(f"  in backend.generate {m.gen:.2f} s (ratio {m.gen / ideal:.2f}), "
          f"engine {m.wall - m.gen:.2f} s")
    print(f"  cpu per request: simlab {statistics.median(r.cpu for r in runs) / turns * 1e3:.3f}"
          f" ms (engine + backend), server "
          f"{statistics.median(r.st['cpu_s'] for r in runs) / turns * 1e3:.3f} ms")
    print(f"  server: {m.requests} requests, peak concurrency {m.st['peak_concurrency']}; "
          f"utterances {m.said}/{turns}; load average during runs "
          f"{', '.join(f'{r.load:.1f}' for r in runs)}")
    server_wait = m.st.get("runq_wait_s")
    print(f"  run-queue wait in the median run (runnable, kept off a CPU by other processes):"
          f" simlab {_secs(m.wait)}, server {_secs(server_wait)}")

    runs0 = measure(args, 0.0)
    m0 = median_run(runs0)
    print(f"latency 0: wall {m0.wall:.2f} s (runs {', '.join(f'{r.wall:.2f}' for r in runs0)}),"
          f" overhead {m0.wall / turns * 1000:.2f} ms per agent-turn (target <= 2 ms): "
          f"backend {m0.gen / turns * 1000:.2f} ms, engine "
          f"{(m0.wall - m0.gen) / turns * 1000:.2f} ms; cpu {m0.cpu / turns * 1e3:.3f} ms; "
          f"{m0.requests} requests, utterances {m0.said}")


if __name__ == "__main__":
    main()
