"""One writer per run directory: an OS file lock, plus a note naming its holder.

Two processes writing one run directory corrupt it (both stage the same episode ids, and
each deletes the other's staging area). The lock is ``RUN/.lock``, an OS-level lock
(``filelock``, ``flock`` on POSIX), so it is released by the kernel when its holder dies:
a killed run never leaves a stale lock behind. The holder writes its PID, host and start
time to ``RUN/.lock.owner`` so a refused process can say who holds the run.

A thread may take the same run's lock more than once (the CLI takes it before Hydra
writes anything, the runner again); the registry below counts its holds, since a second
``flock`` on a new descriptor would block on the first one in the same process. Another
thread of the same process is refused like another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simlab.store.manifest import StoreError

LOCK_FILE = ".lock"
OWNER_FILE = ".lock.owner"


class RunLockedError(StoreError):
    """Another process is writing this run directory."""


_HELD: dict[str, tuple[Any, int, int]] = {}  # run dir -> (FileLock, holds, thread id)
_HELD_LOCK = threading.Lock()


def holder(run_dir: str | Path) -> dict[str, Any] | None:
    """The holder note of ``run_dir`` (pid, host, since), or None if there is none."""
    try:
        data = json.loads((Path(run_dir) / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process (it has not written its PID yet)"
    return f"PID {info.get('pid')} on host {info.get('host')} since {info.get('since')}"


def acquire(run_dir: str | Path) -> None:
    """Take the run's lock or raise :class:`RunLockedError` naming its holder.

    Creates ``run_dir`` (and only the lock file in it) if needed; a refused caller
    writes nothing else.
    """
    from filelock import FileLock, Timeout

    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path}: run directory path is a file")
    key = str(path.resolve())
    with _HELD_LOCK:
        if key in _HELD:
            lock, count, owner = _HELD[key]
            if owner != threading.get_ident():
                raise RunLockedError(f"{path}: run directory is in use by another thread of "
                                     f"this process (PID {os.getpid()})")
            _HELD[key] = (lock, count + 1, owner)
            return
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the run directory ({exc.strerror})") from exc
        lock = FileLock(str(path / LOCK_FILE), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            info = None
            for _ in range(20):  # the holder writes its note right after locking
                info = holder(path)
                if info:
                    break
                time.sleep(0.05)
            raise RunLockedError(
                f"{path}: run directory is in use by {_describe(info)}; wait for it to "
                "finish, or choose another run directory (hydra.run.dir=…)"
            ) from None
        except OSError as exc:
            raise StoreError(f"{path}: cannot lock the run directory ({exc})") from exc
        note = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            tmp = path / f"{OWNER_FILE}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(note) + "\n", encoding="utf-8")
            os.replace(tmp, path / OWNER_FILE)
        except OSError:  # the note is a courtesy; the lock itself is what counts
            pass
        _HELD[key] = (lock, 1, threading.get_ident())


def release(run_dir: str | Path) -> None:
    """Give back one hold on the run's lock (the last one unlocks it)."""
    path = Path(run_dir)
    key = str(path.resolve())
    with _HELD_LOCK:
        if key not in _HELD:
            return
        lock, count, owner = _HELD.pop(key)
        if count > 1:
            _HELD[key] = (lock, count - 1, owner)
            return
        info = holder(path)
        if info and info.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                (path / OWNER_FILE).unlink()
        lock.release()


def is_locked(run_dir: str | Path) -> bool:
    """Whether some process (this one included) holds the run's lock right now."""
    from filelock import FileLock, Timeout

    path = Path(run_dir)
    if str(path.resolve()) in _HELD:
        return True
    if not (path / LOCK_FILE).exists():
        return False
    probe = FileLock(str(path / LOCK_FILE))
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run directory's lock for the block."""
    acquire(run_dir)
    try:
        yield
    finally:
        release(run_dir)
