"""Benchmark: the run browser's page load times over a sweep of 10,000 episodes (issue 18).

Builds a sweep of ``--runs`` runs × ``--episodes`` mock dialogue episodes: one real run
made by simlab, copied to the other run directories with their seeds changed in the
manifest (what the pages read is the same as a real sweep's). The first run is analysed
with `simlab analyze`. Then each page is requested ``--repeats`` times through the app
(Starlette's test client: server time, no network), and the median and the worst are
printed. Target (issue 18): Runs and Metrics under 2 s. The sweep-wide analysis is made
by stacking the first run's tables (see ``stack_sweep_analysis``).

    python benchmarks/bench_ui.py [--runs 100] [--episodes 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIMLAB = [sys.executable, "-m", "simlab.cli.main"]


def build(root: Path, runs: int, episodes: int) -> Path:
    first = root / "job000"
    t0 = time.perf_counter()
    subprocess.run([*SIMLAB, "backend=mock", f"episodes={episodes}", "progress=false",
                    f"hydra.run.dir={first}"], check=True, capture_output=True)
    print(f"one run of {episodes} episodes: {time.perf_counter() - t0:.1f} s")
    for i in range(1, runs):
        where = root / f"job{i:03d}"
        shutil.copytree(first, where)
        manifest = json.loads((where / "manifest.json").read_text())
        manifest["config"]["seed"] = manifest["seed"] = i
        manifest["run_dir"] = str(where)
        (where / "manifest.json").write_text(json.dumps(manifest))
    t0 = time.perf_counter()
    subprocess.run([*SIMLAB, "analyze", str(first)], check=True, capture_output=True)
    print(f"simlab analyze of one run: {time.perf_counter() - t0:.1f} s")
    stack_sweep_analysis(root, first, runs)
    return first


def stack_sweep_analysis(root: Path, first: Path, runs: int) -> None:
    """A sweep-wide analysis of the size `simlab analyze SWEEP` would write (every run's
    episodes, agents and turns), made by stacking the first run's tables once per run
    in two groups; analysing 10,000 episodes for real takes minutes, and the page reads
    only the tables' sizes and columns."""
    import polars as pl

    out = root / "analysis" / "metrics"
    out.mkdir(parents=True)
    for name in ("episodes", "agents", "turns", "runs"):
        table = pl.read_parquet(first / "analysis" / "metrics" / f"{name}.parquet")
        parts = [table.with_columns(group=pl.lit(f"projection={'ab'[i % 2]}"),
                                    run=pl.lit(f"job{i:03d}")) for i in range(runs)]
        pl.concat(parts).write_parquet(out / f"{name}.parquet")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from starlette.testclient import TestClient

    from simlab.ui.app import make_app

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sweep"
        build(root, args.runs, args.episodes)
        client = TestClient(make_app([root]))
        total = args.runs * args.episodes
        print(f"\n{args.runs} runs × {args.episodes} episodes = {total:,} episodes")
        pages = {"Runs (/)": "/", "Run (100 episodes)": "/run/0",
                 "Metrics (analysed run)": "/run/0/metrics",
                 "Sweep metrics (10,000 episodes)": "/sweep/0/metrics",
                 "Episode": "/run/0/episode/ep00000",
                 "Episode, egocentric view": None}
        from simlab.ui import data

        _, agents = data.episode(data.discover([root])[0], "ep00000")
        pages["Episode, egocentric view"] = f"/run/0/episode/ep00000?view={agents[0]['agent_id']}"
        for label, path in pages.items():
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                page = client.get(path)
                times.append(time.perf_counter() - t0)
                assert page.status_code == 200, (path, page.status_code)
            print(f"  {label:32s} median {statistics.median(times) * 1000:7.1f} ms   "
                  f"worst {max(times) * 1000:7.1f} ms   {len(page.content):,} bytes")


if __name__ == "__main__":
    main()
