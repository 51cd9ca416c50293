"""Benchmark: N agents × S simultaneous ticks through the engine and the litellm backend.

Issue 3's acceptance: with a provider answering in ``latency`` seconds and serving any
number of requests at once, a run should take at most 1.2 × the ideal
``S × ceil(N / cap) × latency`` (``cap`` = the backend's in-flight limit), and the
framework should add at most 2 ms per agent-turn (measured at 0 latency: wall / (N × S)).

The provider is ``tests/servers/fake_openai.py`` in its own process (so its CPU does not
share our GIL). Each agent makes one call per tick: a trivial scenario on a ring graph
with the simultaneous schedule, run by ``run_episode`` (LangGraph) as the CLI runs it.

    python benchmarks/bench_throughput.py [--agents 1000 --ticks 3 --latency 0.2
                                           --cap 256 --transport auto --profile]
"""

from __future__ import annotations

import argparse
import cProfile
import math
import os
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_dialogue import machine
from servers.fake_openai import serve, stats

from simlab.agents import PersonaAgent
from simlab.backends.base import ChatRequest, ChatResponse, Message
from simlab.backends.litellm_backend import LiteLLMBackend
from simlab.personas.model import Persona
from simlab.scenario import Scenario
from simlab.scheduler import TickEngine, run_episode
from simlab.scheduler.policies import Simultaneous


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
    sc = TickScenario(population=population(agents), episode_id="bench", seed=7,
                      schedule=Simultaneous())
    backend.in_generate = 0.0
    start = time.perf_counter()
    run_episode(TickEngine(sc, backend, max_steps=ticks))
    return time.perf_counter() - start, sc


def measure(args: argparse.Namespace, latency: float) -> tuple[float, float, dict, TickScenario]:
    with serve(latency_s=latency, subprocess_=True) as url:
        backend = TimedBackend("openai/fake", api_base=url, max_in_flight=args.cap,
                               timeout_s=30.0, transport=args.transport)
        try:
            episode(backend, min(args.agents, args.cap), 1)  # warm: connections, imports
            stats(url, reset=True)
            profiler = cProfile.Profile() if args.profile and latency == 0 else None
            if profiler:
                profiler.enable()
            wall, sc = episode(backend, args.agents, args.ticks)
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            return wall, backend.in_generate, stats(url), sc
        finally:
            backend.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--ticks", type=int, default=3)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--cap", type=int, default=256)
    p.add_argument("--transport", default="auto", choices=("auto", "litellm", "direct"))
    p.add_argument("--profile", action="store_true",
                   help="cProfile the 0-latency run (the main thread: the engine)")
    args = p.parse_args(argv)
    n, s = args.agents, args.ticks
    turns = n * s
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} (other tenants)")
    print(f"agents {n} × ticks {s} = {turns} agent-turns, cap {args.cap}, "
          f"transport {args.transport}")

    wall, gen, st, sc = measure(args, args.latency)
    said = sum(1 for e in sc.log if e.kind == "utterance")
    ideal = s * math.ceil(n / args.cap) * args.latency
    print(f"latency {args.latency} s: wall {wall:.2f} s, ideal {ideal:.2f} s, "
          f"ratio {wall / ideal:.2f} (target <= 1.2)")
    print(f"  in backend.generate {gen:.2f} s (ratio {gen / ideal:.2f}), "
          f"engine {wall - gen:.2f} s")
    print(f"  server: {st['requests']} requests, peak concurrency {st['peak_concurrency']}, "
          f"cpu {st['cpu_s']:.2f} s; utterances {said}/{turns}")

    wall0, gen0, st0, sc0 = measure(args, 0.0)
    said0 = sum(1 for e in sc0.log if e.kind == "utterance")
    print(f"latency 0: wall {wall0:.2f} s, overhead {wall0 / turns * 1000:.2f} ms per "
          f"agent-turn (target <= 2 ms): backend {gen0 / turns * 1000:.2f} ms, engine "
          f"{(wall0 - gen0) / turns * 1000:.2f} ms; {st0['requests']} requests, "
          f"utterances {said0}")


if __name__ == "__main__":
    main()
