"""Benchmark: the quickstart job (`simlab` with no arguments) on the embedded model.

Runs the default config in-process (3 client–responder dialogues, SmolLM2-135M via
llama.cpp) and prints wall time, turns, tokens and per-turn latency. Target (issue 2):
the whole run under 180 s on 2 cores. Extra Hydra overrides can be passed as arguments:

    python benchmarks/bench_dialogue.py [override ...]
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import compose

from simlab.runner import run
from simlab.store import load_run


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main(overrides: list[str]) -> None:
    cfg = compose("progress=false", *overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = run(cfg, Path(tmp) / "run")
        wall = time.perf_counter() - t0
        tables = load_run(Path(tmp) / "run")
    said = tables.events.filter(pl.col("kind") == "utterance")
    gen_s = said["latency_s"].sum()
    toks = int(said["completion_tokens"].sum())
    lat = said["latency_s"]
    print(f"machine: {machine()}")
    print(f"overrides: {overrides or '(none: the quickstart job)'}")
    print(f"episodes: {tables.episodes.height}  turns: {summary.turns}  "
          f"failures: {summary.failures}  min turns/episode: {tables.episodes['n_turns'].min()}")
    print(f"ended: {dict(summary.terminations)}")
    print(f"wall: {wall:.1f} s (target < 180 s)  model time: {gen_s:.1f} s")
    print(f"completion tokens: {toks}  prompt tokens: {int(said['prompt_tokens'].sum())}")
    print(f"generation throughput: {toks / gen_s:.1f} completion tok/s (model time)")
    print(f"per-turn latency: p50 {lat.median():.2f} s  p95 {lat.quantile(0.95):.2f} s  "
          f"max {lat.max():.2f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
