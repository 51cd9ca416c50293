"""Checkpoints inside an episode: ``RUN/checkpoints/<episode id>/``.

A long episode (a year of opinion days, decades of tax years) must not restart at tick 0
when its process dies. Every K ticks the runner writes the episode's state here, and a
resumed run continues from the newest one. The event log is append-only, so it is
written in **segments**, each holding only what the log (and the scenario's other
append-only state) gained since the previous checkpoint (``segment-<tick>.seg``, with
the span of events it holds); ``state.ckpt`` holds everything else and lists the
segments it needs, with their SHA-256. A checkpoint therefore costs what the last K
ticks added, not the whole history (``benchmarks/bench_checkpoint.py``).

Every file is written to a temporary name, fsynced and renamed into place, and carries a
header with its payload's length and SHA-256; the state file is written last. A torn,
foreign or stale checkpoint is ignored (and reported), never half-loaded. The directory
is deleted once its episode is committed, so ``episodes/`` stays the only record of
work that is done.

Payloads are pickles (the scenario is a Mesa model with its agents and RNG): resume only
run directories you trust, as with any framework's checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simlab.store.manifest import fsync_dir

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
STATE = "state.ckpt"
_MAGIC = b"simlab-checkpoint 4\n"  # 3: segments hold append-only scenario state; 4: calls


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One read checkpoint: the tick to continue from, its state and event segments."""

    episode_id: str
    tick: int
    state: bytes
    segments: list[bytes]
    header: dict[str, Any]


class CheckpointProblem(ValueError):
    """Why a checkpoint file cannot be used."""


def _compat() -> dict[str, str]:
    """What unpickling depends on: another Python or simlab may not read a payload."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        simlab = version("simlab")
    except PackageNotFoundError:
        simlab = "unknown"
    return {"python": f"{sys.version_info.major}.{sys.version_info.minor}", "simlab": simlab}


def _write(path: Path, payload: bytes, header: dict[str, Any]) -> str:
    """Write ``path`` atomically; return the payload's SHA-256."""
    digest = hashlib.sha256(payload).hexdigest()
    header = {**header, "size": len(payload), "sha256": digest}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(_MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n")
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return digest


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointProblem(f"{path.name} is missing") from None
    if not raw.startswith(_MAGIC):
        raise CheckpointProblem(f"{path.name} is not a simlab checkpoint")
    head, _, payload = raw[len(_MAGIC):].partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        raise CheckpointProblem(f"{path.name} has an unreadable header") from None
    if header.get("size") != len(payload) or \
            header.get("sha256") != hashlib.sha256(payload).hexdigest():
        raise CheckpointProblem(f"{path.name} is truncated or corrupt (size or SHA-256 differ)")
    return header, payload


class Checkpoints:
    """The checkpoints of one run directory (the caller holds the run's lock)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir) / CHECKPOINT_DIR
        self._segments: dict[str, list[dict[str, Any]]] = {}  # episode -> listed segments

    def path(self, episode_id: str) -> Path:
        return self.dir / episode_id

    def write(self, episode_id: str, tick: int, state: bytes, segment: bytes | None,
              span: tuple[int, int], **info: Any) -> None:
        """Write the segment (if any; it holds events ``span``), then the state that
        lists it."""
        where = self.path(episode_id)
        where.mkdir(parents=True, exist_ok=True)
        listed = list(self._segments.get(episode_id, []))
        if segment is not None:
            name = f"segment-{tick:09d}.seg"
            digest = _write(where / name, segment, {"episode_id": episode_id, "span": span})
            listed.append({"name": name, "span": list(span), "sha256": digest})
        header = {"episode_id": episode_id, "tick": tick, "segments": listed, **_compat(),
                  **info}
        _write(where / STATE, state, header)
        fsync_dir(where)
        self._segments[episode_id] = listed

    def read(self, episode_id: str) -> Checkpoint | None:
        """The episode's checkpoint, or None if there is none or it is not whole."""
        where = self.path(episode_id)
        if not (where / STATE).exists():
            return None
        try:
            found = self._load(episode_id, where)
        except CheckpointProblem as exc:
            log.warning("ignoring the checkpoint in %s: %s; the episode restarts at tick 0",
                        where, exc)
            return None
        self._segments[episode_id] = found.header["segments"]
        return found

    def _load(self, episode_id: str, where: Path) -> Checkpoint:
        header, state = _read(where / STATE)
        if header.get("episode_id") != episode_id:
            raise CheckpointProblem(f"it belongs to episode {header.get('episode_id')!r}")
        stale = {k: (header.get(k), v) for k, v in _compat().items() if header.get(k) != v}
        if stale:
            raise CheckpointProblem(f"it was written by another version ({stale})")
        segments, end = [], 0
        for seg in header["segments"]:
            seg_header, payload = _read(where / seg["name"])
            if seg_header["sha256"] != seg["sha256"] or seg["span"][0] != end:
                raise CheckpointProblem(f"{seg['name']} is not the segment the state lists")
            segments.append(payload)
            end = seg["span"][1]
        return Checkpoint(episode_id, int(header["tick"]), state, segments, header)

    def drop(self, episode_id: str) -> None:
        shutil.rmtree(self.path(episode_id), ignore_errors=True)
        self._segments.pop(episode_id, None)

    def clear_partial(self) -> None:
        """Remove temporary files a killed writer left (never a finished checkpoint)."""
        if self.dir.is_dir():
            for tmp in self.dir.glob("*/.*.tmp"):
                tmp.unlink(missing_ok=True)
