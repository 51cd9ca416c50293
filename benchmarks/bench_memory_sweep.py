"""Benchmark: what memory does to the agents, on the embedded model (issue 14, part 4).

A sweep ``memory=full,window,summary,retrieval`` × ``seed=0,1,2`` of 40-turn persona
dialogues on the embedded SmolLM2-135M at ``backend.n_ctx`` (default 1024, small enough
that a 40-turn view outgrows it around turn 15, so the policies differ), then
``simlab analyze`` over the sweep, which groups runs by ``memory`` and compares the
groups with 95 % intervals. Prints the analysis report's tables; the whole report is
left in ``--out``. A ``full`` run that outgrows the window stops with ``context
overflow`` and stores no episode: it is counted as failed, not left out.

    python benchmarks/bench_memory_sweep.py [--out runs/memory-sweep] [--n-ctx 1024]
        [--turns 40] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dialogue import machine


def sweep(out: Path, args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-m", "simlab.cli.main", "-m", "progress=false", "episodes=1",
           f"scenario.min_turns={args.turns}", f"scenario.max_turns={args.turns}",
           f"backend.n_ctx={args.n_ctx}", "memory=full,window,summary,retrieval",
           f"seed={args.seeds}", f"hydra.sweep.dir={out}"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    print(f"sweep exit {done.returncode} in {time.perf_counter() - t0:.0f} s")
    return time.perf_counter() - t0


def statuses(out: Path) -> dict[str, list[str]]:
    """Run status (and cause) per memory policy."""
    by: dict[str, list[str]] = {}
    for manifest in sorted(out.glob("*/manifest.json")):
        m = json.loads(manifest.read_text())
        policy = m["config"]["memory"]["policy"]
        cause = f" ({m['cause'][:90]})" if m.get("cause") else ""
        by.setdefault(policy, []).append(f"{m['status']}{cause}")
    return by


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/memory-sweep")
    p.add_argument("--n-ctx", type=int, default=1024)
    p.add_argument("--turns", type=int, default=40)
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    print(f"machine: {machine()}; {args.turns}-turn dialogues at n_ctx {args.n_ctx}, "
          f"seeds {args.seeds}")
    sweep(out / "dialogue", args)
    for policy, runs in statuses(out / "dialogue").items():
        print(f"  {policy:9s} {'; '.join(runs)}")
    analysis = out / "dialogue" / "analysis"
    done = subprocess.run([sys.executable, "-m", "simlab.cli.main", "analyze",
                           str(out / "dialogue"), "--no-plots", "--format", "md",
                           "--out", str(analysis)], capture_output=True, text=True)
    print(f"analyze exit {done.returncode}; report: {analysis}")
    for report in sorted(analysis.glob("*.md")):
        print(report.read_text())


if __name__ == "__main__":
    main()
