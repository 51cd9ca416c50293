"""Non-judge analysis metrics on a synthetic store at SPASM's scale.

    .venv/bin/python benchmarks/bench_analysis.py [--conversations 45000] [--turns 10]
                                                  [--jobs 2] [--store DIR]

Builds (once, then reuses) a synthetic run of N two-party conversations x T turns in the
store layout (``RUN/episodes/<id>/{events,agents,episode}.parquet``; written without
fsync, it is a fixture), with 2,000 personas whose utterances mix common words with
their own, and a 1,000-conversation reference corpus. Then times ``load_run`` and
``compute_metrics`` (every non-judge metric, naturalness distances included) and prints
wall and CPU seconds per stage. Target (issue 5): metrics <= 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from simlab.analysis.metrics import compute_metrics, reference_stats
from simlab.events import EVENT_COLUMNS
from simlab.store import RunTables, load_run
from simlab.store.episodes import AGENTS_SCHEMA, EPISODES_SCHEMA, EVENTS_SCHEMA, MANIFEST

ROOT = Path(__file__).resolve().parents[1]


def _words(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 9, size=n)
    return ["".join(rng.choice(letters, size=k)) for k in lengths]


def synthetic_tables(n_conv: int, n_turns: int, seed: int = 0, n_personas: int = 2000):
    """Events, agents and episodes frames of a synthetic run (built vectorised)."""
    rng = np.random.default_rng(seed)
    common = np.array(_words(rng, 1500))
    own = np.array(_words(rng, n_personas * 12)).reshape(n_personas, 12)
    pairs = np.stack([rng.choice(n_personas, size=2, replace=False) for _ in range(n_conv)])
    n_utt = n_conv * n_turns
    speaker_slot = np.tile(np.arange(n_turns) % 2, n_conv)
    persona = pairs[np.repeat(np.arange(n_conv), n_turns), speaker_slot]
    lengths = rng.integers(6, 21, size=n_utt)
    texts = []
    for i in range(n_utt):
        k = lengths[i]
        mine = rng.random(k) < 0.3
        w = np.where(mine, own[persona[i], rng.integers(0, 12, size=k)],
                     common[rng.integers(0, len(common), size=k)])
        s = " ".join(w)
        texts.append(s[0].upper() + s[1:] + ("?" if rng.random() < 0.3 else "."))
    eid = np.repeat([f"ep{i:06d}" for i in range(n_conv)], n_turns)
    keys = np.array([f"p{p}" for p in range(n_personas)])
    events = pl.DataFrame({
        "episode_id": eid, "step": np.tile(np.arange(n_turns), n_conv),
        "seq": np.tile(np.arange(n_turns), n_conv), "speaker": keys[persona],
        "audience": [[k] for k in keys[pairs[np.repeat(np.arange(n_conv), n_turns),
                                             1 - speaker_slot]]],
        "kind": "utterance", "content": texts, "model": "synthetic",
    })
    events = events.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in EVENTS_SCHEMA.items()
                                 if c not in events.columns).select(list(EVENT_COLUMNS))
    events = events.cast(dict(EVENTS_SCHEMA.items()))
    desc = [" ".join(own[p]) + ". " + " ".join(common[rng.integers(0, 1500, size=8)])
            for p in range(n_personas)]
    agents = pl.DataFrame({
        "episode_id": np.repeat([f"ep{i:06d}" for i in range(n_conv)], 2),
        "agent_id": keys[pairs.ravel()], "name": keys[pairs.ravel()], "role": "member",
        "persona_id": keys[pairs.ravel()], "description": np.array(desc)[pairs.ravel()],
    })
    episodes = pl.DataFrame({
        "episode_id": [f"ep{i:06d}" for i in range(n_conv)], "episode_index": np.arange(n_conv),
        "scenario": "synthetic", "seed": np.arange(n_conv), "n_turns": n_turns,
        "n_events": n_turns, "n_failures": 0, "termination_reason": "max_turns", "wall_s": 0.0,
        "participants": [list(keys[p]) for p in pairs],
    }, schema_overrides=dict(EPISODES_SCHEMA.items()))
    return events, agents.cast({k: v for k, v in AGENTS_SCHEMA.items()}), episodes


def build_store(path: Path, n_conv: int, n_turns: int) -> None:
    """Write the synthetic run in the store layout, one folder per episode."""
    import json

    events, agents, episodes = synthetic_tables(n_conv, n_turns)
    ev = events.partition_by("episode_id", as_dict=True, maintain_order=True)
    ag = agents.partition_by("episode_id", as_dict=True, maintain_order=True)
    for i, row in enumerate(episodes.partition_by("episode_id", maintain_order=True)):
        eid = row["episode_id"][0]
        d = path / "episodes" / eid
        d.mkdir(parents=True, exist_ok=True)
        ev[(eid,)].write_parquet(d / "events.parquet")
        ag[(eid,)].write_parquet(d / "agents.parquet")
        row.write_parquet(d / "episode.parquet")
        if i % 5000 == 0:
            print(f"  wrote {i}/{n_conv} episodes", flush=True)
    (path / MANIFEST).write_text(json.dumps({"config": {"synthetic": True}, "seed": 0,
                                             "n_conversations": n_conv, "n_turns": n_turns}))


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--conversations", type=int, default=45_000)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--store", type=Path)
    p.add_argument("--in-memory", action="store_true",
                   help="skip the on-disk store: time the metrics on in-memory tables")
    p.add_argument("--build-only", action="store_true", help="build the store and stop")
    args = p.parse_args()
    store = args.store or ROOT / ".cache" / "bench_analysis" / f"{args.conversations}x{args.turns}"
    if not args.in_memory and not (store / MANIFEST).is_file():
        print(f"building synthetic store {store} …", flush=True)
        t = time.perf_counter()
        build_store(store, args.conversations, args.turns)
        print(f"  built in {time.perf_counter() - t:.1f} s")
    if args.build_only:
        return
    print(f"machine: {os.cpu_count()} cores, load avg {load_avg()}; "
          f"python {sys.version.split()[0]}")

    t, c = time.perf_counter(), time.process_time()
    if args.in_memory:
        run = RunTables(Path("synthetic"), {}, *synthetic_tables(args.conversations, args.turns))
        what = "built in memory"
    else:
        run = load_run(store)
        what = "load_run"
    print(f"{what}: {run.episodes.height} episodes, {run.events.height} events in "
          f"{time.perf_counter() - t:.1f} s wall ({time.process_time() - c:.1f} s CPU)")

    ev, ag, ep = synthetic_tables(1000, args.turns, seed=1)
    ref = reference_stats(RunTables(Path("ref"), {}, ev, ag, ep), "synthetic reference")

    t, c = time.perf_counter(), time.process_time()
    m = compute_metrics(run, reference=ref, n_jobs=args.jobs)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    # the vectorising workers' CPU: counted once they are shut down and reaped
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = workers.ru_utime + workers.ru_stime
    stages = ", ".join(f"{k} {v:.1f}/{m.timings[k + '_cpu']:.1f}" for k, v in m.timings.items()
                       if not k.endswith("_cpu"))
    print(f"compute_metrics (all non-judge metrics, jobs={args.jobs}): {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU in this process + {worker_cpu:.1f} s in vectorising workers")
    print(f"  stages (wall/CPU s): {stages}")
    print(f"  rows: turns {m.turns.height}, agents {m.agents.height}, "
          f"episodes {m.episodes.height}; pooled consistency AUC "
          f"{m.run['consistency_auc']:.3f}; mean MRR@10 {m.episodes['mrr_k10'].mean():.3f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB; load avg after {load_avg()}; "
          f"target <= 60 s: {'met' if wall <= 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
