"""Plain-text transcripts for ``simlab show``: a human check of what the agents did.

Derived from the stored event log only (the single source of truth), with names taken
from the ``agents`` table so a transcript reads like a script rather than a list of ids.
"""

from __future__ import annotations

import textwrap
from typing import Any

import polars as pl

from simlab.context.base import speaker_label
from simlab.events import ENV, FAILURE, NARRATION, UTTERANCE
from simlab.store.episodes import RunTables
from simlab.store.manifest import StoreError

NARRATOR = "Narrator"
_INDENT = "    "


def _describe_agent(agent: dict[str, Any]) -> str:
    details = [agent.get(k) for k in ("role", "age", "occupation")]
    shown = ", ".join(str(d) for d in details if d not in (None, ""))
    name = agent.get("name") or agent["agent_id"]
    return f"{name} ({shown})" if shown else str(name)


def _wrap(prefix: str, text: str, width: int) -> list[str]:
    """Wrap each paragraph of ``text``; continuation lines are indented under the name."""
    lines: list[str] = []
    for i, para in enumerate(text.split("\n")):
        first = prefix + para if i == 0 else _INDENT + para
        wrapped = textwrap.wrap(first, width=width, subsequent_indent=_INDENT)
        lines.extend(wrapped or [first.rstrip()])
    return lines


def _event_lines(event: dict[str, Any], names: dict[str, str], width: int) -> list[str]:
    speaker = event["speaker"]
    name = NARRATOR if speaker == ENV else speaker_label(names.get(speaker, speaker))
    step, kind, content = event["step"], event["kind"], event["content"]
    if kind == FAILURE:
        return _wrap(f"[{step}] {name} ✗ (failed: {content})", "", width)
    tag = "" if kind in (UTTERANCE, NARRATION) else f" ({kind})"
    return _wrap(f"[{step}] {name}{tag}: ", content, width)


def _format_episode(
    episode: dict[str, Any], agents: pl.DataFrame, events: pl.DataFrame, width: int
) -> str:
    header = [f"Episode {episode['episode_id']}"]
    if episode.get("scenario"):
        header.append(f"scenario: {episode['scenario']}")
    if episode.get("n_turns") is not None:
        header.append(f"{episode['n_turns']} turns")
    if episode.get("termination_reason"):
        header.append(f"ended: {episode['termination_reason']}")
    lines = ["=== " + " | ".join(header) + " ===", "Participants:"]
    agent_rows = agents.to_dicts()
    lines += [f"  - {_describe_agent(a)}" for a in agent_rows] or ["  (none)"]
    lines.append("")
    names = {a["agent_id"]: a.get("name") or a["agent_id"] for a in agent_rows}
    for event in events.to_dicts():
        lines += _event_lines(event, names, width)
    return "\n".join(lines)


def format_transcripts(tables: RunTables, episode: str | None = None, width: int = 100) -> str:
    """Transcripts of every committed episode (or only ``episode``), in episode order."""
    episodes = tables.episodes
    if episode is not None:
        episodes = episodes.filter(pl.col("episode_id") == episode)
        if episodes.is_empty():
            have = ", ".join(tables.episodes["episode_id"].to_list()) or "none"
            raise StoreError(f"{tables.run_dir}: no episode {episode!r} (have: {have})")
    if episodes.is_empty():
        return f"No completed episodes in {tables.run_dir}."
    blocks = []
    for ep in episodes.to_dicts():
        ep_id = ep["episode_id"]
        agents = tables.agents.filter(pl.col("episode_id") == ep_id)
        events = tables.events.filter(pl.col("episode_id") == ep_id)
        blocks.append(_format_episode(ep, agents, events, width))
    return "\n\n".join(blocks) + "\n"
