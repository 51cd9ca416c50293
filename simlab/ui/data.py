"""What the run browser shows, read from the store: read-only, and lazily.

The Runs page reads manifests only, so it costs one small JSON file per run, whatever
the runs hold. An episode's page reads that episode's own Parquet files, never the whole
run. Nothing here writes: the browser cannot damage a run, even one still running.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from simlab.analysis.compare import differing_keys, find_runs, flatten, short_key
from simlab.events import MEMORY
from simlab.store.episodes import AGENTS_FILE, EPISODE_FILE, EPISODES_DIR, EVENTS_FILE, MANIFEST

EPISODE_ID = re.compile(r"^ep\d{5,}$")  # simlab.store.episodes.episode_id's form
#: config keys the Runs page always has a column for
SHOWN = frozenset({"scenario", "seed", "episodes"})


@dataclass(frozen=True)
class Run:
    """A run directory the browser was pointed at, and its manifest."""

    id: int
    path: Path
    manifest: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config") or {}

    def row(self) -> dict[str, Any]:
        """The Runs page's columns for this run."""
        summary = self.manifest.get("summary") or {}
        backend = self.manifest.get("backend") or {}
        return {
            "id": self.id, "path": str(self.path), "name": self.path.name,
            "scenario": (self.config.get("scenario") or {}).get("name", "?"),
            "model": backend.get("model_id") or backend.get("model") or "?",
            "seed": self.config.get("seed"), "status": self.manifest.get("status", "?"),
            "episodes": summary.get("episodes_done", summary.get("episodes_run", 0)),
            "planned": summary.get("episodes_planned", self.config.get("episodes")),
            "turns": summary.get("turns", 0), "failures": summary.get("failures", 0),
            "tokens": summary.get("prompt_tokens", 0) + summary.get("completion_tokens", 0),
            "cost_usd": summary.get("cost_usd", 0.0),
        }


def _manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # being replaced: read again on the next load
        return {"status": "unreadable"}


def discover(paths: Sequence[str | Path], ids: dict[Path, int] | None = None) -> list[Run]:
    """Every run under ``paths`` (run directories, or folders of them at any depth). A
    path that holds no run (yet) is skipped. ``ids`` gives each run directory its id
    for as long as the app runs, so a link or an open tab keeps naming the same run
    when runs appear; it only grows."""
    ids = {} if ids is None else ids
    runs = []
    for root in paths:
        try:
            found = find_runs([root])
        except FileNotFoundError:  # missing, or no run in it yet
            continue
        for path in found:
            runs.append(Run(ids.setdefault(path.resolve(), len(ids)), path, _manifest(path)))
    return runs


def reread(run: Run) -> Run:
    """The run with its manifest read again (a live run's status and summary move)."""
    return Run(run.id, run.path, _manifest(run.path))


def sweeps(runs: Sequence[Run], folder_ids: dict[Path, int] | None = None
           ) -> list[dict[str, Any]]:
    """Runs grouped by the folder that holds them (a sweep's directory), each group with
    the config keys that differ between its runs as extra columns, and a stable id
    (``folder_ids``, which only grows) for its metrics page."""
    folder_ids = {} if folder_ids is None else folder_ids
    groups: dict[Path, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.path.parent, []).append(run)
    out = []
    for parent, members in groups.items():
        keys = differing_keys([r.config for r in members]) if len(members) > 1 else []
        keys = [k for k in keys if short_key(k) not in SHOWN]  # columns of their own
        rows = []
        for run in members:
            flat = flatten(run.config)
            rows.append({**run.row(), "keys": {short_key(k): flat.get(k) for k in keys}})
        out.append({"id": folder_ids.setdefault(parent.resolve(), len(folder_ids)),
                    "folder": str(parent), "keys": [short_key(k) for k in keys],
                    "runs": rows, "analysed": (parent / ANALYSIS).is_dir()})
    return out


def _episode_dir(run: Run, episode_id: str) -> Path:
    where = run.path / EPISODES_DIR / episode_id
    if not EPISODE_ID.match(episode_id) or not (where / EPISODE_FILE).is_file():
        raise KeyError(f"{run.path}: no committed episode {episode_id!r}")
    return where


def episodes(run: Run) -> pl.DataFrame:
    """One row per committed episode (its ``episode.parquet``), in id order."""
    files = sorted((run.path / EPISODES_DIR).glob(f"*/{EPISODE_FILE}"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


def episode(run: Run, episode_id: str) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """An episode's events (by seq) and its agents' rows."""
    where = _episode_dir(run, episode_id)
    events = pl.read_parquet(where / EVENTS_FILE).sort("seq")
    return events, pl.read_parquet(where / AGENTS_FILE).to_dicts()


def episode_table(run: Run, episode_id: str, name: str) -> pl.DataFrame:
    """One of the episode's scenario tables (``stances``, ``ticks`` …); empty if absent."""
    path = _episode_dir(run, episode_id) / f"{name}.parquet"
    return pl.read_parquet(path) if path.is_file() else pl.DataFrame()


def event_rows(events: pl.DataFrame, names: dict[str, str]) -> list[dict[str, Any]]:
    """The global log as the Episode page lists it: who, to whom, what, and the raw
    reply where the recorded text is not the model's reply verbatim."""
    rows = []
    for e in events.iter_rows(named=True):
        data = {}
        if e.get("data"):
            try:
                data = json.loads(e["data"])
            except ValueError:
                data = {}
        raw = data.get("raw") if isinstance(data, dict) else None
        rows.append({
            "seq": e["seq"], "step": e["step"], "kind": e["kind"],
            "speaker": names.get(e["speaker"], e["speaker"]), "speaker_id": e["speaker"],
            "audience": [names.get(a, a) for a in (e["audience"] or [])],
            "content": e["content"] or "", "raw": raw if raw != e["content"] else None,
            "attempts": e.get("attempts") or 0,
        })
    return rows


def agent_view(events: pl.DataFrame, agents: Sequence[dict[str, Any]], episode_id: str,
               agent_id: str) -> list[dict[str, str]]:
    """The agent's egocentric view of the whole episode (the ECP projector over the
    stored events, as ``simlab export`` rebuilds it), with its memories (role
    ``memory``) where they were written. What a memory policy cut from each request is
    not rebuilt: the view is the whole projection the policy fitted."""
    from simlab.export.rows import egocentric

    if agent_id not in {a["agent_id"] for a in agents}:
        raise KeyError(f"episode {episode_id} has no agent {agent_id!r}")
    projector, log = egocentric(episode_id, events, agents)
    messages = projector.view(agent_id, log)
    # What the agent remembered (a memory policy's summaries and reflections, kind
    # "memory", seen by the agent alone), placed where each was written.
    memories = events.filter((pl.col("kind") == MEMORY) & (pl.col("speaker") == agent_id))
    pending = list(memories.select("seq", "content").iter_rows())
    out: list[dict[str, str]] = []
    for message, seq in zip(messages, projector.message_seqs(agent_id), strict=True):
        while pending and pending[0][0] < seq:
            out.append({"role": "memory", "content": pending.pop(0)[1]})
        out.append(message.as_dict())
    out += [{"role": "memory", "content": content} for _, content in pending]
    return out


ANALYSIS = "analysis"  # where `simlab analyze RUN` writes (simlab/analysis/analyze.py)
#: per-turn metrics the Agent page shows beside each turn
TURN_METRICS = ("persona_sim", "drift_rel", "echo_partner_sim", "echoed", "repetition",
                "role_assistant", "role_partner_label", "role_self_answer")


def analysis_tables(where: Path, limit: int = 200) -> dict[str, pl.DataFrame]:
    """The ``simlab analyze`` tables (metrics and scenario) of a run or a sweep folder
    ``where``, first ``limit`` rows each, read lazily; empty when it was not analysed."""
    root = where / ANALYSIS
    out = {}
    for folder in ("metrics", "scenario"):
        for path in sorted((root / folder).glob("*.parquet")):
            out[f"{folder}/{path.stem}"] = pl.scan_parquet(path).head(limit).collect()
    return out


def plots(where: Path) -> list[str]:
    """The analysis plots' file names (PNG) of a run or a sweep folder, served by the app
    from that folder only."""
    return sorted(p.name for p in (where / ANALYSIS / "plots").glob("*.png"))


def turn_metrics(run: Run, episode_id: str, agent_id: str) -> dict[int, dict[str, Any]]:
    """Per-turn metrics of one agent by its turn number (``agent_turn``: its n-th
    utterance, from 0), if the run was analysed."""
    path = run.path / ANALYSIS / "metrics" / "turns.parquet"
    if not path.is_file():
        return {}
    rows = (pl.scan_parquet(path)
            .filter((pl.col("episode_id") == episode_id) & (pl.col("agent_id") == agent_id))
            .collect())
    keep = [c for c in TURN_METRICS if c in rows.columns]
    return {r["agent_turn"]: {k: r[k] for k in keep} for r in rows.iter_rows(named=True)}


def census_attributes(agent: dict[str, Any]) -> list[dict[str, Any]]:
    """A census persona's attributes with the ACS column and code each was read from
    (``simlab/census/render.py``'s labels); then the rest: raw ACS columns with no label
    (age, income …) and what simlab derived (Big Five, life stage …). Empty for a persona
    that did not come from census records."""
    from simlab.census.render import LABELLED

    try:
        attrs = json.loads(agent.get("attributes_json") or "{}")
    except ValueError:
        return []
    if not isinstance(attrs, dict) or "SERIALNO" not in attrs:
        return []
    rows = [{"attribute": name, "value": attrs[name], "column": col, "code": attrs.get(col)}
            for name, col in LABELLED.items() if name in attrs]
    shown = {r["attribute"] for r in rows} | {r["column"] for r in rows}
    for key in sorted(k for k in attrs if k not in shown):
        acs = key.isupper()
        rows.append({"attribute": key, "value": attrs[key], "column": key if acs else "",
                     "code": attrs[key] if acs else None})
    return rows


#: the persona metrics a sweep's comparison draws first (docs/metrics.md)
COMPARED = ("consistency", "drift_level", "echo_rate", "role_confusion_rate", "mrr_k5",
            "naturalness_distance", "n_utterances")  # naturalness: with --reference


def group_comparison(where: Path) -> pl.DataFrame:
    """Mean and 95% t-interval per group of the analysed episodes under ``where`` (a
    sweep's ``simlab analyze``); empty with fewer than two groups."""
    from simlab.analysis.compare import summarize_groups

    path = where / ANALYSIS / "metrics" / "episodes.parquet"
    if not path.is_file():
        return pl.DataFrame()
    episodes = pl.read_parquet(path)
    if "group" not in episodes.columns or episodes["group"].n_unique() < 2:
        return pl.DataFrame()
    return summarize_groups(episodes, [m for m in COMPARED if m in episodes.columns])


def turns_table(where: Path) -> pl.DataFrame:
    """The analysed per-turn metrics under ``where`` (empty if not analysed), only the
    columns the drift chart draws, read lazily."""
    path = where / ANALYSIS / "metrics" / "turns.parquet"
    if not path.is_file():
        return pl.DataFrame()
    names = pl.scan_parquet(path).collect_schema().names()
    keep = [c for c in ("group", "agent_turn", "drift_rel") if c in names]
    return pl.scan_parquet(path).select(keep).collect()
