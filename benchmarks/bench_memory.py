"""Benchmark: prompt tokens per agent-turn over long runs, by memory policy (issue 14).

A 365-day opinion run and a 50-tax-year economy run (100 work periods, an LLM planner)
on the mock backend, whose tokens are words. ``full`` runs with no window (the view
grows without bound, as before memory existed); ``window``, ``summary`` and
``retrieval`` run against a declared window of ``--window`` words, as the embedded
model's ``n_ctx`` would bind. For each run: the mean prompt per model call in each tenth
of the run, the largest prompt, and the run's total prompt tokens against ``full``'s.
"bounded" means the largest prompt stayed within the window (for the fitted policies:
within window - max_tokens - margin).

    python benchmarks/bench_memory.py [--window 2048] [--days 365] [--years 50]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dialogue import machine

from simlab.backends.mock import MockBackend
from simlab.cli.compose import compose
from simlab.context.memory import MemoryConfig
from simlab.population import build_population
from simlab.runner import engine_config, episode_seeds, make_scenario
from simlab.scheduler import TickEngine, run_episode

POLICIES = ("full", "window", "summary", "retrieval")


def scenario_overrides(kind: str, args: argparse.Namespace) -> list[str]:
    if kind == "opinion":
        return ["scenario=opinion", f"scenario.ticks={args.days}", "scenario.n_agents=12",
                "scenario.survey_every=30", f"engine.max_steps={args.days * 3}"]
    return ["scenario=economy", f"scenario.ticks={args.years * 2}", "scenario.tax_year=2",
            "scenario.n_workers=12", "scenario.planner=llm", f"engine.max_steps={args.years * 8}"]


def one(kind: str, policy: str, args: argparse.Namespace) -> dict:
    cfg = compose(["backend=mock", "progress=false", *scenario_overrides(kind, args)])
    rng, seeds = episode_seeds(cfg.seed, 1)
    backend = MockBackend(context_window=None if policy == "full" else args.window)
    population = build_population(cfg.population, rng, backend)
    sc = make_scenario(cfg, population, 0, seeds[0])
    engine = TickEngine(sc, backend, settings=engine_config(cfg),
                        memory=MemoryConfig(policy=policy))
    t0 = time.perf_counter()
    run_episode(engine)
    wall = time.perf_counter() - t0
    steps = np.array([e.step for e in sc.log if e.attempts > 0])
    tokens = np.array([e.prompt_tokens for e in sc.log if e.attempts > 0])
    edges = np.linspace(0, sc.steps_taken, 11)
    deciles = [float(tokens[(steps >= lo) & (steps < hi)].mean())
               for lo, hi in itertools.pairwise(edges)]
    return {"kind": kind, "policy": policy, "deciles": deciles, "max": int(tokens.max()),
            "total": int(tokens.sum()), "calls": len(tokens), "steps": sc.steps_taken,
            "failures": sum(1 for e in sc.log if e.kind == "failure"), "wall": wall,
            "reason": sc.termination_reason}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--window", type=int, default=2048)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--years", type=int, default=50)
    args = p.parse_args(argv)
    print(f"machine: {machine()}; mock window {args.window} words (window policy)")
    for kind in ("opinion", "economy"):
        rows = {policy: one(kind, policy, args) for policy in POLICIES}
        full = rows["full"]["total"]
        for policy, r in rows.items():
            curve = " ".join(f"{d:,.0f}" for d in r["deciles"])
            flat = r["max"] <= args.window
            print(f"{kind:8s} {policy:7s} per-call prompt by tenth of the run: {curve}")
            print(f"{'':17s}max {r['max']:,}  total {r['total']:,} "
                  f"({r['total'] / full:.1%} of full)  calls {r['calls']:,}  steps "
                  f"{r['steps']}  failures {r['failures']}  ended {r['reason']}  "
                  f"wall {r['wall']:.1f} s  bounded: {'yes' if flat else 'NO'}")


if __name__ == "__main__":
    main()
