"""Benchmark: a 60-day opinion run on the embedded model at ``n_ctx`` 2048 (issue 14).

Without memory an agent's view outgrows a 2,048-token window after about two weeks of
days, and every later call fails. This runs ``simlab scenario=opinion`` for
``--days`` days on the embedded SmolLM2-135M with ``backend.n_ctx=2048``, once per
``--policies`` entry (default ``window,summary``), and reports per policy: the run's
status, wall time, calls, failures (context-overflow failures counted apart), the
largest prompt sent against the budget, and the mean prompt of the first and the last
tenth of the days (flat when memory works). ``--agents`` defaults to 4, not the
scenario's 12, so both runs fit in an hour on 2 cores; the window per agent is what
matters, and it grows with the days, not with the number of agents.

    python benchmarks/bench_memory_opinion.py [--out runs/memory-opinion] [--days 60]
        [--agents 4] [--policies window,summary]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dialogue import machine

OVERFLOW = ("exceed context window", "context overflow")


def run(out: Path, policy: str, args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-m", "simlab.cli.main", "scenario=opinion", "progress=false",
           "episodes=1", f"scenario.ticks={args.days}", f"scenario.n_agents={args.agents}",
           f"backend.n_ctx={args.n_ctx}", f"memory={policy}", f"seed={args.seed}",
           f"hydra.run.dir={out}"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode:
        print(done.stderr[-2000:])
    return time.perf_counter() - t0


def report(out: Path, policy: str, wall: float, days: int) -> str:
    manifest = json.loads((out / "manifest.json").read_text())
    files = sorted(out.glob("episodes/*/events.parquet"))
    if not files:
        return f"| {policy} | {manifest['status']} ({manifest.get('cause', '')[:80]}) | " \
               f"{wall:.0f} s | – | – | – | – | – |"
    ev = pl.read_parquet(files[0])
    calls = ev.filter(pl.col("prompt_tokens") > 0)
    failures = ev.filter(pl.col("kind") == "failure")
    overflow = failures.filter(pl.any_horizontal(
        [pl.col("content").str.contains(s, literal=True) for s in OVERFLOW])).height
    tenth = max(1, days // 10)
    mean = calls.group_by(pl.col("step") // tenth).agg(pl.col("prompt_tokens").mean())
    mean = dict(zip(*mean.sort("step").to_dict(as_series=False).values(), strict=True))
    first, last = mean[min(mean)], mean[max(mean)]
    memory = ev.filter(pl.col("kind") == "memory").height
    # an event's tokens are summed over its attempts: the largest prompt sent is the
    # largest of the events made in one attempt
    largest = calls.filter(pl.col("attempts") == 1)["prompt_tokens"].max()
    reasked = calls.filter(pl.col("attempts") > 1).height
    return (f"| {policy} | {manifest['status']} | {wall:.0f} s | {calls.height} "
            f"({memory} memory, {reasked} re-asked) | {failures.height} ({overflow} overflow) "
            f"| {largest} | {first:.0f} | {last:.0f} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/memory-opinion")
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--agents", type=int, default=4)
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policies", default="window,summary")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    print(f"machine: {machine()}; {args.days}-day opinion, {args.agents} agents, "
          f"n_ctx {args.n_ctx}, seed {args.seed}")
    rows = []
    for policy in args.policies.split(","):
        wall = run(out / policy, policy, args)
        rows.append(report(out / policy, policy, wall, args.days))
        print(rows[-1], flush=True)
    print("| memory | status | wall | calls | failures | largest prompt | mean prompt, "
          "first tenth | mean prompt, last tenth |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
