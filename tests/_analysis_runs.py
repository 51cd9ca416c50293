"""Tiny hand-made runs for the analysis and export tests.

Texts like ``"aaaa"`` are one character 4-gram each, so cosines between them are exactly
1 (same text) or 0 (no shared 4-gram) whatever the IDF weights: expected metric values
can be worked out by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from simlab.events import EVENT_COLUMNS
from simlab.store import RunStore, RunTables
from simlab.store.episodes import AGENTS_SCHEMA, EPISODES_SCHEMA, EVENTS_SCHEMA

Turns = Sequence[tuple[str, str]]


def _event(eid: str, seq: int, speaker: str, audience: list[str], kind: str,
           content: str, model: str = "toy/model") -> dict[str, Any]:
    row = {c: None for c in EVENT_COLUMNS}
    row.update(episode_id=eid, step=seq, seq=seq, speaker=speaker, audience=audience,
               kind=kind, content=content, prompt_tokens=0, completion_tokens=0,
               latency_s=0.0, finish_reason="stop", backend="toy",
               model=model if speaker != "env" else "", request_seed=-1, attempts=1,
               cost_usd=0.0, data="")
    return row


def episode_parts(eid: str, index: int, turns: Turns, personas: Mapping[str, str],
                  names: Mapping[str, str] | None = None, narration: str | None = None):
    speakers = list(dict.fromkeys(s for s, _ in turns))
    names = names or {s: s.capitalize() for s in speakers}
    events = []
    if narration is not None:
        events.append(_event(eid, 0, "env", speakers, "narration", narration))
    for s, text in turns:
        events.append(_event(eid, len(events), s, [x for x in speakers if x != s],
                             "utterance", text))
    agents = [{"agent_id": s, "name": names[s], "role": "member", "persona_id": f"p_{s}",
               "description": personas[s]} for s in speakers]
    episode = {"episode_index": index, "scenario": "toy", "seed": index,
               "n_turns": len(turns), "n_events": len(events), "n_failures": 0,
               "termination_reason": "max_turns", "wall_s": 0.0, "participants": speakers}
    return events, agents, episode


def make_run(episodes: Sequence[Turns], personas: Mapping[str, str],
             names: Mapping[str, str] | None = None,
             config: Mapping[str, Any] | None = None) -> RunTables:
    """An in-memory run: episode ``ep{i}`` has the given (speaker, text) turns."""
    ev, ag, ep = [], [], []
    for i, turns in enumerate(episodes):
        e, a, row = episode_parts(f"ep{i}", i, turns, personas, names)
        ev += e
        ag += [{"episode_id": f"ep{i}", **x} for x in a]
        ep.append({"episode_id": f"ep{i}", **row})
    return RunTables(
        run_dir=Path("mem"), manifest={"config": dict(config or {}), "seed": 0,
                                       "backend": {"model": "toy/model"}},
        events=pl.DataFrame(ev, schema=EVENTS_SCHEMA),
        agents=pl.DataFrame(ag, schema={**AGENTS_SCHEMA, "description": pl.String}),
        episodes=pl.DataFrame(ep, schema=EPISODES_SCHEMA))


def write_run(run_dir: Path, episodes: Sequence[Turns], personas: Mapping[str, str],
              config: Mapping[str, Any] | None = None,
              names: Mapping[str, str] | None = None, narration: str | None = None) -> Path:
    """The same, written to disk as a store (manifest + committed episodes)."""
    store = RunStore(run_dir)
    store.write_manifest({"config": dict(config or {}), "seed": (config or {}).get("seed", 0),
                          "backend": {"backend": "toy", "model": "toy/model"}})
    for i, turns in enumerate(episodes):
        events, agents, episode = episode_parts(f"ep{i:05d}", i, turns, personas, names,
                                                narration)
        store.write_episode(f"ep{i:05d}", events, agents, episode)
    return run_dir
