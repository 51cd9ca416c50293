"""Benchmark: the AgentTorch archetype trick — cost saved against fidelity lost.

With ``archetypes=true`` a scenario asks one representative per demographic cell and
gives every member its answer. This script runs the economy and the opinion scenario on
the same census people three ways — per agent (seed s), per agent again (seed s+1: the
model's own run-to-run noise) and by archetype (seed s) — and prints, per scenario:

* **cost**: model calls, prompt and completion tokens, wall and CPU seconds;
* **fidelity**: per period, the total variation distance (TVD) between the distribution of
  actions (hours on the grid; Likert stances) and the gaps in the aggregates (mean hours,
  pre-tax Gini; mean stance, stance variance) — archetype vs per-agent, next to the same
  figures for per-agent vs per-agent, so a gap can be read against the noise floor.

    python benchmarks/bench_archetypes.py [--agents 24 --ticks 2 --backend llamacpp|mock]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_dialogue import machine
from conftest import compose

from scenarios.economy import EconomyConfig, EconomyScenario
from scenarios.opinion import OpinionConfig, OpinionScenario
from simlab.population import build_population
from simlab.runner import make_backend
from simlab.scheduler import TickEngine, run_episode
from simlab.scheduler.settings import EngineConfig


def tvd(a: Sequence[float], b: Sequence[float]) -> float:
    ca, cb = Counter(a), Counter(b)
    return 0.5 * sum(abs(ca[k] / len(a) - cb[k] / len(b)) for k in set(ca) | set(cb))


def episode(kind: str, people, backend, seed: int, archetypes: bool, ticks: int):
    episode = {"episode_id": "bench", "seed": seed}
    if kind == "economy":
        sc = EconomyScenario.create(
            EconomyConfig(n_workers=len(people), ticks=ticks, tax_year=ticks + 1,
                          planner="us_federal", archetypes=archetypes), people, **episode)
    else:
        sc = OpinionScenario.create(
            OpinionConfig(n_agents=len(people), ticks=ticks, survey_every=0,
                          archetypes=archetypes), people, **episode)
    settings = EngineConfig(max_steps=100, max_consecutive_failures=10**6)
    cpu0, t0 = time.process_time(), time.perf_counter()
    run_episode(TickEngine(sc, backend, settings=settings))
    calls = [e for e in sc.log if e.prompt_tokens or e.completion_tokens]
    cost = {"calls": len(calls), "prompt": sum(e.prompt_tokens for e in calls),
            "completion": sum(e.completion_tokens for e in calls),
            "wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}
    return sc, cost


def actions(sc, kind: str) -> dict[int, list[float]]:
    rows, key = (sc.rows["labour"], "hours") if kind == "economy" else (sc.rows["stances"],
                                                                          "stance")
    out: dict[int, list[float]] = {}
    for r in rows:
        if r[key] is not None:
            out.setdefault(r["tick"], []).append(r[key])
    return out


def gaps(kind: str, a, b) -> dict[str, float]:
    """Mean over periods of the TVD of actions and the absolute gaps in aggregates."""
    xa, xb = actions(a, kind), actions(b, kind)
    ticks = sorted(set(xa) & set(xb))
    out = {"tvd": float(np.mean([tvd(xa[t], xb[t]) for t in ticks]))}
    keys = ("mean_hours", "gini_pretax") if kind == "economy" else ("mean_stance",
                                                                    "var_stance")
    ra = {r["tick"]: r for r in a.rows["ticks"]}
    rb = {r["tick"]: r for r in b.rows["ticks"]}
    for k in keys:
        out[k] = float(np.mean([abs(ra[t][k] - rb[t][k]) for t in ticks]))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=24)
    p.add_argument("--ticks", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="llamacpp", choices=("llamacpp", "mock"))
    p.add_argument("--scenario", choices=("economy", "opinion", "both"), default="both")
    args = p.parse_args(argv)
    cfg = compose("population=census", f"population.n={args.agents}",
                  f"backend={args.backend}")
    people = build_population(cfg.population, np.random.default_rng(args.seed))
    backend = make_backend(cfg.backend)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} (other tenants)")
    print(f"{args.agents} census people × {args.ticks} periods, backend {backend.model_id}")
    kinds = ("economy", "opinion") if args.scenario == "both" else (args.scenario,)
    try:
        for kind in kinds:
            base, c_base = episode(kind, people, backend, args.seed, False, args.ticks)
            again, _ = episode(kind, people, backend, args.seed + 1, False, args.ticks)
            arch, c_arch = episode(kind, people, backend, args.seed, True, args.ticks)
            cells = len(arch.arch.members) if arch.arch else 0
            print(f"{kind}: {cells} cells ({', '.join(arch.archetype_by)})")
            for label, c in (("per agent", c_base), ("archetype", c_arch)):
                print(f"  {label:>9}: {c['calls']} calls, {c['prompt']} prompt + "
                      f"{c['completion']} completion tokens, wall {c['wall']:.1f} s, "
                      f"cpu {c['cpu']:.1f} s")
            noise, bias = gaps(kind, base, again), gaps(kind, base, arch)
            for label, g in (("per agent, seed s vs s+1", noise),
                             ("archetype vs per agent", bias)):
                print(f"  {label:>26}: " + ", ".join(f"{k} {v:.3f}" for k, v in g.items()))
    finally:
        backend.close()


if __name__ == "__main__":
    main()
