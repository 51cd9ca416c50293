"""Benchmark: the embedded model's batch engine against the one-at-a-time path, one run.

Three parts (``--parts``, default all):

- ``scenarios``: ``simlab`` with each scenario's defaults (the quickstart's 3 dialogues,
  ``scenario=economy``, ``scenario=opinion``), each run as its own process, alternating
  ``old`` (``backend.batched=false backend.weights=shipped``: today's path before the
  engine), ``new`` (the defaults) and ``new-shipped`` (the engine on the shipped Q4_1
  file, to separate what KV reuse and batching give from what the Q8_0 copy gives).
  Prints wall time, prompt tokens evaluated per call, time per tick and peak RSS.
- ``direct``: tokens/s of a tick of 12 cold requests through simlab (templating,
  tokenizing, parsing, the wrappers) against :class:`BatchEngine` called directly on
  the same token lists.
- ``memory``: 100 agents' views at ``n_ctx`` 2048 through the default caps: peak RSS and
  the KV counters (evictions) after every agent has had two turns.
- ``settings``: prompt and generation tokens/s by ``backend.weights`` and thread count.

    python benchmarks/bench_batch.py [--parts scenarios,direct,memory,settings] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "old": ["backend.batched=false", "backend.weights=shipped"],
    "new": [],
    "new-shipped": ["backend.weights=shipped"],
}
SCENARIOS = {"quickstart": [], "economy": ["scenario=economy"], "opinion": ["scenario=opinion"]}


def run_simlab(overrides: list[str], run_dir: Path) -> dict:
    """One ``simlab`` process; its wall time, peak RSS and manifest figures."""
    cmd = [str(Path(sys.executable).with_name("simlab")), "progress=false",
           "backend.cache.enabled=false", f"hydra.run.dir={run_dir}", *overrides]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{cmd} failed: {proc.stderr.read().decode()[-2000:]}")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    stats = manifest["backend_stats"]
    calls = max(stats["calls"], 1)
    requests = max(stats.get("kv_requests", stats["requests"]), 1)
    return {"status": manifest["status"], "wall_s": wall, "backend_s": stats["wall_s"],
            "requests": stats["requests"], "ticks": stats["calls"],
            "prompt_per_call": stats["prompt_tokens"] / max(stats["requests"], 1),
            "evaluated_per_call": stats.get("kv_evaluated_tokens", 0) / requests,
            "s_per_tick": stats["wall_s"] / calls, "peak_rss_mb": usage.ru_maxrss / 1024,
            "failures": manifest["summary"].get("failures", 0)}


def part_scenarios(args: argparse.Namespace) -> None:
    print("scenario     variant      wall     backend  ticks  s/tick  prompt/call  "
          "evaluated/call  peak RSS  status")
    with tempfile.TemporaryDirectory() as tmp:
        results: dict[tuple[str, str], dict] = {}
        for name in args.scenarios:
            scen = SCENARIOS[name]
            for variant in args.variants:
                r = run_simlab([*scen, *VARIANTS[variant]], Path(tmp) / f"{name}-{variant}")
                results[name, variant] = r
                print(f"{name:12} {variant:11} {r['wall_s']:7.1f} s {r['backend_s']:7.1f} s "
                      f"{r['ticks']:5d} {r['s_per_tick']:6.2f}  {r['prompt_per_call']:11.0f}  "
                      f"{r['evaluated_per_call']:14.0f}  {r['peak_rss_mb']:6.0f} MB  "
                      f"{r['status']}", flush=True)
        for name in args.scenarios:
            old = results.get((name, "old"))
            for variant in ("new", "new-shipped"):
                if old and (name, variant) in results:
                    ratio = old["wall_s"] / results[name, variant]["wall_s"]
                    print(f"{name}: {variant} is {ratio:.2f}x faster than old (wall)")


def recorded_tick() -> list:
    """A tick of 12 economy workers' first requests, recorded with the mock backend."""
    from simlab.backends.mock import MockBackend
    from simlab.cli.compose import compose
    from simlab.runner import run

    recorder = MockBackend()
    with tempfile.TemporaryDirectory() as tmp:
        run(compose(["scenario=economy", "episodes=1", "progress=false", "backend=mock"]),
            Path(tmp) / "r", backend=recorder)
    first = [r for r in recorder.calls if r.tag.startswith("census")][:12]
    # untagged: no request keeps KV, so every round is the same cold work
    return [type(r)(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "tag": "",
                       "json_schema": None, "max_tokens": 32}) for r in first]


def part_direct(args: argparse.Namespace) -> None:
    import llama_cpp

    from simlab.backends.llamacpp import LlamaCppBackend
    from simlab.backends.llamacpp_adapter import model_pointer
    from simlab.backends.llamacpp_batch import BatchEngine
    from simlab.backends.wrappers import wrap_backend

    requests = recorded_tick()
    inner = LlamaCppBackend(share_prefix=0)
    backend = wrap_backend(inner)
    engine = BatchEngine(llama_cpp, model_pointer(inner._llm), n_ctx=inner.n_ctx,
                         parallel=inner.parallel, n_batch=inner.n_batch,
                         n_threads=inner.n_threads, cache_bytes=0, share_prefix=0)
    seqs = [inner._seq_request(r) for r in requests]
    best = {"simlab": 0.0, "direct": 0.0}
    for i in range(args.rounds):
        for name in best:
            t0 = time.perf_counter()
            if name == "simlab":
                out = backend.generate(requests)
                tokens = sum(r.prompt_tokens + r.completion_tokens for r in out)
            else:
                res = engine.run([cold_copy(q) for q in seqs])
                tokens = sum(r.prompt_tokens + len(r.tokens) for r in res)
            rate = tokens / (time.perf_counter() - t0)
            best[name] = max(best[name], rate)
            print(f"round {i}: {name:>6}: {tokens} tokens, {rate:.1f} tok/s", flush=True)
    print(f"best simlab {best['simlab']:.1f} tok/s, direct {best['direct']:.1f} tok/s, "
          f"ratio {best['simlab'] / best['direct']:.3f} (target >= 0.95)")


def part_memory(args: argparse.Namespace) -> None:
    from simlab.backends.base import ChatRequest, Message
    from simlab.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend()  # the defaults: n_ctx 2048, parallel 8, kv_cache_mb 1024
    rules = ("This is a town meeting about the new water plant. Speak in the first person, "
             "briefly, and stay in character. ") * 4
    history = " ".join(f"Earlier, speaker {k} said the plant should open in spring {k}."
                       for k in range(30))

    def view(i: int, turn: int) -> tuple[Message, ...]:
        msgs = [Message("system", f"{rules}You are resident number {i}, aged {20 + i % 60}, "
                                  f"who lives on street {i * 7 % 101}."),
                Message("user", history)]
        if turn:
            msgs += [Message("assistant", "I agree."), Message("user", "And now?")]
        return tuple(msgs)

    t0 = time.perf_counter()
    for turn in range(2):
        for start in range(0, args.agents, 25):
            backend.generate([ChatRequest(view(i, turn), max_tokens=4, seed=i, tag=f"r{i}")
                              for i in range(start, min(start + 25, args.agents))])
    stats = backend.stats()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{args.agents} agents x 2 turns in {time.perf_counter() - t0:.0f} s; "
          f"prompt tokens {stats['kv_prompt_tokens']}, evaluated {stats['kv_evaluated_tokens']}")
    print(f"saved states: peak {stats['kv_peak_saved_bytes'] / 2**20:.0f} MiB (cap "
          f"{backend.kv_cache_mb} MiB), saves {stats['kv_saves']}, restores "
          f"{stats['kv_restores']}, evictions {stats['kv_evictions']}")
    print(f"peak RSS of this process {rss:.0f} MiB (target: within 2 GB)")


def part_settings(args: argparse.Namespace) -> None:
    """Prompt and generation tokens/s of the engine by weights and threads (docs/backends.md)."""
    import llama_cpp

    from simlab.backends.llamacpp import LlamaCppBackend
    from simlab.backends.llamacpp_adapter import model_pointer
    from simlab.backends.llamacpp_batch import BatchEngine

    requests = recorded_tick()[:8]
    print("weights  threads  prompt tok/s  generate tok/s (1 seq)  generate tok/s (8 seqs)")
    for weights in ("shipped", "q8_0"):
        for threads in sorted({1, os.cpu_count() or 1}):
            inner = LlamaCppBackend(weights=weights, n_threads=threads, share_prefix=0)
            engine = BatchEngine(llama_cpp, model_pointer(inner._llm), n_ctx=inner.n_ctx,
                                 parallel=8, n_batch=inner.n_batch, n_threads=threads,
                                 cache_bytes=0, share_prefix=0)
            seqs = [inner._seq_request(r) for r in requests]
            t0 = time.perf_counter()
            engine.run([cold_copy(q, max_tokens=1) for q in seqs])
            prompt_rate = sum(len(q.tokens) for q in seqs) / (time.perf_counter() - t0)
            rates = []
            for batch in (seqs[:1], seqs):  # generation steps only, from the engine's clock
                before = engine.stats.copy()
                engine.run([cold_copy(q, max_tokens=48, stop=()) for q in batch])
                done = engine.stats.since(before)
                rates.append(done.generated_tokens / done.step_s)
            engine.close()
            print(f"{weights:8} {threads:7d}  {prompt_rate:12.0f}  {rates[0]:22.0f}  "
                  f"{rates[1]:23.0f}", flush=True)


def cold_copy(q, **changes):
    """``q`` untagged (it keeps no KV), with ``changes``."""
    from simlab.backends.llamacpp_batch import SeqRequest

    return SeqRequest(**{**{f: getattr(q, f) for f in q.__slots__}, "key": None, **changes})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="scenarios,direct,memory,settings")
    ap.add_argument("--variants", default="old,new,new-shipped")
    ap.add_argument("--scenarios", default="quickstart,economy,opinion")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--agents", type=int, default=100)
    args = ap.parse_args()
    args.variants, args.scenarios = args.variants.split(","), args.scenarios.split(",")
    print(f"machine: {os.cpu_count()} cores, {_cpu()}")
    parts = args.parts.split(",")
    for part in parts:
        print(f"\n== {part}", flush=True)
        if part == "memory" and len(parts) > 1:  # alone in a fresh process: its own RSS
            subprocess.run([sys.executable, __file__, "--parts", "memory", "--agents",
                            str(args.agents)], check=True)
            continue
        parts = {"scenarios": part_scenarios, "direct": part_direct, "memory": part_memory,
                 "settings": part_settings}
        parts[part](args)


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
