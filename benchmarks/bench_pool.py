"""Benchmark: sticky against round-robin (and litellm's least-busy) routing over a pool of
local llama.cpp servers.

Starts ``--servers`` llama.cpp servers on 127.0.0.1 (``simlab.backends.llamacpp_server``
with the bundled SmolLM2, one thread each, llama-cpp-python's RAM prompt cache on), then
plays the same workload through ``backend.endpoints`` with each routing policy, in
alternating rounds: ``--agents`` agents whose views grow turn by turn, as under ECP (a
persona, then every earlier turn), one tick of all agents at once per turn. Each round
uses fresh agent names, so no round finds another's prompts in a server cache.

Prints, per policy: wall time per tick, mean seconds per call, how many servers each
agent's calls reached, and the prompt tokens the servers evaluated (read from llama.cpp's
timing lines in their logs: what their prompt caches did not cover). The servers are
stopped by PID at the end.

    python benchmarks/bench_pool.py [--servers 2] [--agents 9] [--turns 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from simlab.backends.base import ChatRequest, Message
from simlab.backends.litellm_adapter import served_by
from simlab.backends.litellm_router import RouterBackend
from simlab.backends.llamacpp import default_model_path
from simlab.backends.pool import EndpointPool, litellm_backend

PERSONA = ("You are {name}, a {age}-year-old who lives by the harbour, mends nets for a "
           "living and has strong views about the new ferry timetable. Speak in the first "
           "person, in one or two sentences, and stay in character. ") * 3


def start_servers(n: int, log_dir: Path) -> tuple[list[subprocess.Popen], list[str]]:
    import socket

    procs, urls = [], []
    for i in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = (log_dir / f"server{i}.log").open("w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "simlab.backends.llamacpp_server", "--model",
             str(default_model_path()), "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "4096", "--n_threads", "1", "--cache", "true",
             "--cache_size", str(1 << 30), "--verbose", "true"],
            stdout=log, stderr=subprocess.STDOUT))
        urls.append(f"http://127.0.0.1:{port}/v1")
    for proc, url in zip(procs, urls, strict=True):
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server for {url} did not come up") from None
                time.sleep(0.5)
    return procs, urls


PROMPT_EVAL = re.compile(r"prompt eval time\s*=\s*[\d.]+ ms /\s*(\d+) tokens")


def evaluated(logs: list[Path], offsets: list[int]) -> tuple[int, list[int]]:
    """Prompt tokens the servers evaluated since ``offsets`` (from llama.cpp's timing
    lines in their logs), and the new offsets."""
    total, new = 0, []
    for log, off in zip(logs, offsets, strict=True):
        data = log.read_bytes()
        total += sum(int(n) for n in PROMPT_EVAL.findall(data[off:].decode("utf-8", "replace")))
        new.append(len(data))
    return total, new


def play(pool: EndpointPool, agents: list[str], turns: int) -> tuple[list[float], list[float]]:
    """Per tick wall seconds, and per call latency seconds."""
    views = {a: [Message("system", PERSONA.format(name=a, age=30 + len(a)))] for a in agents}
    ticks, latencies = [], []
    for t in range(turns):
        reqs = []
        for a in agents:
            views[a].append(Message("user", f"Turn {t}: the others have spoken. Your turn."))
            reqs.append(ChatRequest(tuple(views[a]), max_tokens=24, temperature=0.0,
                                    seed=t, tag=a, affinity=f"ep/{a}"))
        t0 = time.perf_counter()
        replies = pool.generate(reqs)
        ticks.append(time.perf_counter() - t0)
        for a, r in zip(agents, replies, strict=True):
            if not r.ok:
                raise SystemExit(f"{a}: {r.error}")
            latencies.append(r.latency_s)
            views[a].append(Message("assistant", r.text))
    return ticks, latencies


def track(pool: object, homes: dict[str, set]) -> None:
    """Record which server each agent's calls went to (for servers per agent)."""
    if isinstance(pool, EndpointPool):
        original = pool.route

        def route(req, exclude=(), original=original):
            r = original(req, exclude)
            homes[req.tag].add(r)
            return r

        pool.route = route  # type: ignore[method-assign]
        return
    assert isinstance(pool, RouterBackend)  # a litellm strategy
    completion = pool._completion

    async def served(request, key, completion=completion):
        resp = await completion(request, key)
        homes[request.tag].add(served_by(resp))
        return resp

    pool._completion = served  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--agents", type=int, default=9)  # odd: round-robin moves agents
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--routings", default="sticky,round_robin,least_busy")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        procs, urls = start_servers(args.servers, Path(tmp))
        logs = [Path(tmp) / f"server{i}.log" for i in range(args.servers)]
        _, offsets = evaluated(logs, [0] * len(logs))
        try:
            results: dict[str, list[tuple[list[float], list[float], float, int]]] = {}
            for rnd in range(args.rounds):
                for routing in args.routings.split(","):
                    pool = litellm_backend(model="openai/smollm2", endpoints=urls,
                                           routing=routing, context_window=4096,
                                           timeout_s=300.0)
                    agents = [f"{routing[:2]}{rnd}-{i}" for i in range(args.agents)]
                    homes: dict[str, set] = {a: set() for a in agents}
                    track(pool, homes)
                    ticks, lat = play(pool, agents, args.turns)
                    spread = statistics.mean(len(h) for h in homes.values())
                    time.sleep(0.5)  # the servers' last timing lines reach their logs
                    tokens, offsets = evaluated(logs, offsets)
                    results.setdefault(routing, []).append((ticks, lat, spread, tokens))
                    per_server = [v["sent"] for v in pool.stats()["pool"].values()]
                    pool.close()
                    print(f"round {rnd} {routing:11}  s/tick {statistics.mean(ticks):6.2f}  "
                          f"s/call {statistics.mean(lat):6.2f}  servers per agent "
                          f"{spread:.1f}  calls per server {per_server}  "
                          f"prompt tokens evaluated {tokens}", flush=True)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(20)
    print(f"\n{args.servers} servers, {args.agents} agents, {args.turns} turns; best round:")
    for routing, rows in results.items():
        ticks, lat, spread, tokens = min(rows, key=lambda r: sum(r[0]))
        print(f"{routing:11}  wall {sum(ticks):6.1f} s  s/tick {statistics.mean(ticks):5.2f}  "
              f"s/call {statistics.mean(lat):5.2f}  servers per agent {spread:.1f}  "
              f"prompt tokens evaluated {tokens} ({tokens / (len(lat) or 1):.0f} a call)")


if __name__ == "__main__":
    main()
