"""Helpers of the reliability suite: run ``simlab`` as a user would, start and stop a
local OpenAI-compatible server by PID, and read every byte a run left on disk."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl

from simlab.events import WALL_CLOCK_COLUMNS
from simlab.store import load_run

TESTS = Path(__file__).resolve().parents[1]
FAKE_SERVER = TESTS / "servers" / "fake_openai.py"


def env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def simlab(*args: str, timeout: float = 300, **env_extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simlab.cli.main", *args],
                          capture_output=True, text=True, env=env(**env_extra),
                          timeout=timeout, stdin=subprocess.DEVNULL)


def start_simlab(*args: str, **env_extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "simlab.cli.main", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(**env_extra), stdin=subprocess.DEVNULL)


def events(run_dir: Path) -> pl.DataFrame:
    return load_run(run_dir).events.drop(list(WALL_CLOCK_COLUMNS))


def manifest(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "manifest.json").read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeServer:
    """``tests/servers/fake_openai.py`` in a child process on a fixed 127.0.0.1 port, so
    a test can kill it by PID and bring it back on the same address."""

    def __init__(self, port: int, *args: str) -> None:
        self.port, self.args, self.proc = port, args, None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeServer:
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE_SERVER), "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE, text=True, env=env())
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"fake server did not start (exit {self.proc.poll()})")
        return self

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            return json.load(r)

    def requests(self) -> int:
        return int(self.stats()["requests"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(predicate, timeout: float = 120.0, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(every)


def leaks(secret: str, *roots: Path, texts: tuple[str, ...] = ()) -> list[str]:
    """Where ``secret`` appears: file contents, file or folder names, console text."""
    found = []
    needle = secret.encode()
    for root in roots:
        for p in Path(root).rglob("*"):
            if secret in str(p.relative_to(root)):
                found.append(f"name: {p}")
            if p.is_file() and needle in p.read_bytes():
                found.append(f"file: {p}")
    found += [f"console: {t[:80]!r}" for t in texts if secret in t]
    return found
