"""The run directory: a manifest plus one atomically committed folder per episode.

An episode is staged in ``RUN/.staging/<id>/``, fsynced, then committed with a single
``os.rename`` to ``RUN/episodes/<id>/``. A rename is atomic, so a killed run leaves each
episode either complete or absent; readers only look at ``RUN/episodes/*/``, and a resumed
run skips :meth:`RunStore.completed_episodes` without redoing or losing finished work.
"""

from __future__ import annotations

import numbers
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import polars as pl

from simlab.events import EVENT_COLUMNS, Event
from simlab.store import lock as run_lock
from simlab.store.calls import CALLS_FILE, CALLS_SCHEMA
from simlab.store.manifest import (
    StoreError,
    atomic_write_json,
    fsync_dir,
    read_json,
    redact_secrets,
)
from simlab.store.reserve import hold_reserve, release
from simlab.store.tables import flatten_row, typed_frame, write_synced

MANIFEST = "manifest.json"
EPISODES_DIR = "episodes"
STAGING_DIR = ".staging"
BROKEN_DIR = ".broken"
EVENTS_FILE, AGENTS_FILE, EPISODE_FILE = "events.parquet", "agents.parquet", "episode.parquet"
#: Written last into each staged episode: every file with its row count, so a resume can
#: tell a whole committed episode from one whose files were truncated or lost.
COMMIT_FILE = "_commit.json"

_EPISODE_ID_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")
_DTYPES: dict[str, Any] = {
    "str": pl.String,
    "int": pl.Int64,
    "float": pl.Float64,
    "bool": pl.Boolean,
    "tuple[str, ...]": pl.List(pl.String),
}


def _events_schema() -> pl.Schema:
    """Schema from :class:`Event` itself, so a zero-event episode still has every column."""
    types = {f.name: str(f.type) for f in fields(Event)}
    unknown = [c for c in EVENT_COLUMNS if types[c] not in _DTYPES]
    if unknown:
        raise TypeError(f"simlab.store: no Parquet type for Event field(s) {unknown}")
    return pl.Schema({c: _DTYPES[types[c]] for c in EVENT_COLUMNS})


EVENTS_SCHEMA = _events_schema()
EPISODES_SCHEMA = pl.Schema(
    {
        "episode_id": pl.String,
        "episode_index": pl.Int64,
        "scenario": pl.String,
        "seed": pl.Int64,
        "n_turns": pl.Int64,
        "n_events": pl.Int64,
        "n_failures": pl.Int64,
        "termination_reason": pl.String,
        "wall_s": pl.Float64,
        "participants": pl.List(pl.String),
    }
)
AGENTS_SCHEMA = pl.Schema(
    {
        "episode_id": pl.String,
        "agent_id": pl.String,
        "name": pl.String,
        "role": pl.String,
        "persona_id": pl.String,
    }
)
_LIST_COLUMNS = frozenset({"participants"})  # string lists kept as List(String)
_CORE_FILES = frozenset({EVENTS_FILE, AGENTS_FILE, EPISODE_FILE, CALLS_FILE})
_TABLE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class RunTables:
    """Everything a run stored, as read by analysis, export and ``simlab show``."""

    run_dir: Path
    manifest: dict[str, Any]
    events: pl.DataFrame
    agents: pl.DataFrame
    episodes: pl.DataFrame
    #: Scenario tables (``Scenario.tables()``), e.g. auction items or per-tick metrics,
    #: concatenated over episodes; each has an ``episode_id`` column.
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)


def episode_id(index: int) -> str:
    """Episode ids are derived from the index, so a resume can skip without rebuilding."""
    return f"ep{index:05d}"


def is_run_dir(path: str | Path) -> bool:
    """A run directory is one with a manifest (written before any episode)."""
    return (Path(path) / MANIFEST).is_file()


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict):
        raise StoreError(f"{path}: manifest is not a JSON object")
    return data


class RunStore:
    """Writes one run directory; safe to reopen after a crash to resume the run.

    Opening a store takes the run directory's lock (:mod:`simlab.store.lock`), so a
    second writer is refused before it touches anything; :meth:`close` gives it back.
    """

    def __init__(self, run_dir: str | Path, *, lock: bool = True) -> None:
        self.run_dir = Path(run_dir)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise StoreError(f"{self.run_dir}: run directory path is a file")
        self._locked = lock
        if lock:
            run_lock.acquire(self.run_dir)
        try:
            self.episodes_dir = self.run_dir / EPISODES_DIR
            self.staging_dir = self.run_dir / STAGING_DIR
            self.episodes_dir.mkdir(parents=True, exist_ok=True)
            # Anything still staged was never committed: a killed run left it behind.
            shutil.rmtree(self.staging_dir, ignore_errors=True)
            self.staging_dir.mkdir()
        except BaseException:
            self.close()
            raise
        self._reserve = hold_reserve(self.run_dir)

    def release_reserve(self) -> bool:
        """Free the space set aside when the store opened (see :mod:`.reserve`)."""
        return release(getattr(self, "_reserve", None))

    def close(self) -> None:
        self.release_reserve()
        """Give back the run directory's lock (idempotent)."""
        if self._locked:
            self._locked = False
            run_lock.release(self.run_dir)

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Atomically replace the manifest (secrets are redacted as a last safeguard)."""
        atomic_write_json(self.manifest_path, redact_secrets(manifest))

    def update_manifest(self, **fields: Any) -> None:
        """Merge top-level ``fields`` into the manifest, e.g. a summary at run end."""
        manifest = self.read_manifest() or {}
        manifest.update(fields)
        self.write_manifest(manifest)

    def read_manifest(self) -> dict[str, Any] | None:
        return _read_manifest(self.manifest_path)

    @staticmethod
    def peek_manifest(run_dir: str | Path) -> dict[str, Any] | None:
        """A run directory's manifest, read without opening (or locking) the store."""
        return _read_manifest(Path(run_dir) / MANIFEST)

    def completed_episodes(self) -> set[str]:
        """Ids of the committed episodes that verify as whole (see :meth:`verify`)."""
        return self.verify()[0]

    def verify(self) -> tuple[set[str], dict[str, str]]:
        """Check every committed episode: ``(whole ids, {broken id: what is wrong})``.

        Whole means every table is present and readable and row counts agree with the
        commit record and the episode row (:func:`simlab.store.verify.check_episode`).
        """
        from simlab.store.verify import check_episode

        good: set[str] = set()
        broken: dict[str, str] = {}
        for p in sorted(self.episodes_dir.iterdir()):
            if not p.is_dir():
                continue
            problem = check_episode(p)
            if problem is None:
                good.add(p.name)
            else:
                broken[p.name] = problem
        return good, broken

    def quarantine(self, episode_id: str) -> Path:
        """Move a broken committed episode to ``RUN/.broken/`` (kept for inspection,
        out of ``load_run``'s way) so it can be redone; returns where it went."""
        src = self.episodes_dir / episode_id
        dest_root = self.run_dir / BROKEN_DIR
        dest_root.mkdir(exist_ok=True)
        dest = dest_root / f"{episode_id}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
        os.rename(src, dest)
        fsync_dir(self.episodes_dir)
        return dest

    def write_episode(
        self,
        episode_id: str,
        events: list[dict[str, Any]],
        agents: list[dict[str, Any]],
        episode: dict[str, Any],
        tables: Mapping[str, list[dict[str, Any]]] | None = None,
        calls: list[dict[str, Any]] | None = None,
    ) -> Path:
        """Stage, fsync and commit one episode; returns its committed directory.
        ``calls`` is its call journal (``calls.parquet``), when it has one."""
        where = f"{self.run_dir}: episode {episode_id!r}"
        if not _EPISODE_ID_RE.match(episode_id):
            raise StoreError(f"{where}: id must match {_EPISODE_ID_RE.pattern}")
        final = self.episodes_dir / episode_id
        if final.exists():
            raise StoreError(f"{final}: episode already committed")
        events_df = self._events_frame(episode_id, events, where)
        agents_rows = [{"episode_id": episode_id, **flatten_row(a)} for a in agents]
        agents_df = typed_frame(agents_rows, AGENTS_SCHEMA, f"{where} agents")
        ep = {"episode_id": episode_id, **episode}
        if ep["episode_id"] != episode_id:
            raise StoreError(f"{where}: episode row has episode_id {ep['episode_id']!r}")
        index = ep.get("episode_index")
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise StoreError(f"{where}: episode row needs an int 'episode_index'")
        episode_df = typed_frame([flatten_row(ep, _LIST_COLUMNS)], EPISODES_SCHEMA,
                                 f"{where} episode")
        extra = {}
        for name, rows in (tables or {}).items():
            if not _TABLE_NAME_RE.match(name) or f"{name}.parquet" in _CORE_FILES:
                raise StoreError(f"{where}: bad scenario table name {name!r}")
            extra[name] = typed_frame(
                [{"episode_id": episode_id, **flatten_row(r)} for r in rows],
                pl.Schema({"episode_id": pl.String}), f"{where} table {name}")

        if calls is not None:
            extra[CALLS_FILE[:-8]] = typed_frame(calls, CALLS_SCHEMA, f"{where} calls")
        stage = self.staging_dir / episode_id
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        try:
            write_synced(events_df, stage / EVENTS_FILE)
            write_synced(agents_df, stage / AGENTS_FILE)
            write_synced(episode_df, stage / EPISODE_FILE)
            for name, df in extra.items():
                write_synced(df, stage / f"{name}.parquet")
            rows = {EVENTS_FILE: events_df.height, AGENTS_FILE: agents_df.height,
                    EPISODE_FILE: 1, **{f"{n}.parquet": df.height for n, df in extra.items()}}
            atomic_write_json(stage / COMMIT_FILE, {"rows": rows})
            fsync_dir(stage)
            os.rename(stage, final)  # the commit point
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        fsync_dir(self.episodes_dir)
        return final

    @staticmethod
    def _events_frame(episode_id: str, events: list[dict[str, Any]], where: str) -> pl.DataFrame:
        expected = set(EVENT_COLUMNS)
        for i, row in enumerate(events):
            if set(row) != expected:
                missing, extra = sorted(expected - set(row)), sorted(set(row) - expected)
                raise StoreError(f"{where}: event {i} missing {missing}, unexpected {extra}")
            if row["episode_id"] != episode_id:
                raise StoreError(f"{where}: event {i} has episode_id {row['episode_id']!r}")
        try:
            return pl.DataFrame(events, schema=EVENTS_SCHEMA)
        except Exception as exc:
            raise StoreError(f"{where}: cannot build events table ({exc})") from exc


def _read(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as exc:
        raise StoreError(f"{path}: cannot read Parquet ({exc})") from exc


def _read_all(paths: list[Path], schema: pl.Schema, sort_by: str | None = None) -> pl.DataFrame:
    """The files' rows as one frame, file by file in the given order.

    Files whose schemas agree are read in one multi-file scan, which polars parallelises
    (45,000 episodes: ~5x faster than a read per file). Any mismatch, or an unreadable
    file, falls back to reading each file (a relaxed diagonal concat that keeps every
    column; a bad file's error names it). ``sort_by`` orders rows within each file.
    """
    if not paths:
        return pl.DataFrame(schema=schema)
    try:
        lf = pl.scan_parquet(paths, include_file_paths="__file", glob=False)
        if sort_by is not None:
            lf = lf.sort(pl.col("__file").rle_id(), sort_by, maintain_order=True)
        return lf.drop("__file").collect()
    except Exception:
        frames = [_read(p) for p in paths]
        if sort_by is not None:
            frames = [f.sort(sort_by, maintain_order=True) for f in frames]
        return pl.concat(frames, how="diagonal_relaxed")


def load_run(run_dir: str | Path) -> RunTables:
    """Read a run's committed episodes, ordered by episode index (events by seq within)."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise StoreError(f"{run_dir}: not a run directory (no {MANIFEST})")
    manifest = _read_manifest(run_dir / MANIFEST) or {}
    episodes_root = run_dir / EPISODES_DIR
    dirs = (
        sorted(p for p in episodes_root.iterdir() if p.is_dir()) if episodes_root.is_dir() else []
    )
    episodes = _read_all([d / EPISODE_FILE for d in dirs], EPISODES_SCHEMA)
    if episodes.height != len(dirs):
        raise StoreError(f"{episodes_root}: {len(dirs)} episodes but {episodes.height} rows "
                         f"in their {EPISODE_FILE} files (expected one each)")
    # episode order: (episode_index, directory name); dirs are already sorted by name
    order = episodes.with_row_index("_i").sort("episode_index", "_i")["_i"].to_list()
    dirs = [dirs[i] for i in order]
    episodes = episodes[order]
    extra: dict[str, list[Path]] = {}
    for d in dirs:
        for f in sorted(d.glob("*.parquet")):
            if f.name not in _CORE_FILES:
                extra.setdefault(f.stem, []).append(f)
    return RunTables(
        run_dir=run_dir,
        manifest=manifest,
        events=_read_all([d / EVENTS_FILE for d in dirs], EVENTS_SCHEMA, sort_by="seq"),
        agents=_read_all([d / AGENTS_FILE for d in dirs], AGENTS_SCHEMA),
        episodes=episodes,
        tables={k: _read_all(v, pl.Schema()) for k, v in extra.items()},
    )


def read_calls(run_dir: str | Path, episode_id: str) -> list[dict[str, Any]] | None:
    """A committed episode's call journal, in call order; None if it has none (stored
    before simlab kept journals)."""
    path = Path(run_dir) / EPISODES_DIR / episode_id / CALLS_FILE
    if not path.is_file():
        return None
    return _read(path).sort("n").to_dicts()
