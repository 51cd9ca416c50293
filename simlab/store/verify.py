"""Is a committed episode whole? The check a resume runs before it skips an episode.

The atomic rename means a *killed* run never commits half an episode, but a disk that
lost data, a copy that was cut short, or a hand edit can still leave a committed folder
with a missing or truncated table. A resume that counted such a folder as done would keep
a run that ``load_run`` cannot read, forever. So each committed episode is checked: every
core table present and readable, and row counts that agree with the commit record
(``_commit.json``, written last before the rename) and with the episode row itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

CORE = ("events.parquet", "agents.parquet", "episode.parquet")


def _rows(path: Path) -> int:
    """Row count of a full read: a damaged data page fails here, not later in analysis."""
    return pl.read_parquet(path).height


def check_episode(folder: Path) -> str | None:
    """``None`` if the committed episode in ``folder`` is whole, else what is wrong."""
    record = None
    commit = folder / "_commit.json"
    if commit.is_file():
        try:
            record = json.loads(commit.read_text(encoding="utf-8"))["rows"]
        except (OSError, ValueError, KeyError, TypeError):
            return "_commit.json is unreadable"
    expected: dict[str, int] = dict(record or {})
    names = set(expected) | set(CORE)
    counts: dict[str, int] = {}
    for name in sorted(names):
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        try:
            counts[name] = _rows(path)
        except Exception as exc:  # polars raises several types for a damaged file
            return f"{name} is unreadable ({type(exc).__name__})"
        if name in expected and counts[name] != expected[name]:
            return f"{name} has {counts[name]} rows, its commit record says {expected[name]}"
    if counts["episode.parquet"] != 1:
        return f"episode.parquet has {counts['episode.parquet']} rows, expected 1"
    try:
        row = pl.read_parquet(folder / "episode.parquet").row(0, named=True)
    except Exception as exc:
        return f"episode.parquet is unreadable ({type(exc).__name__})"
    n_events = row.get("n_events")
    if isinstance(n_events, int) and counts["events.parquet"] != n_events:
        return f"events.parquet has {counts['events.parquet']} rows, the episode says {n_events}"
    participants = row.get("participants")
    if isinstance(participants, list) and counts["agents.parquet"] != len(participants):
        return (f"agents.parquet has {counts['agents.parquet']} rows for "
                f"{len(participants)} participants")
    if row.get("episode_id") not in (None, folder.name):
        return f"episode.parquet is for episode {row.get('episode_id')!r}"
    return None
