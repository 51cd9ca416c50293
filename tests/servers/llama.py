"""A real llama.cpp OpenAI-compatible server on 127.0.0.1 for one test, stopped by PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def llama_server(log_dir: Path, *args: str) -> Iterator[str]:
    """``python -m simlab.backends.llamacpp_server`` with the embedded SmolLM2 and
    ``args``; yields its ``/v1`` URL once it answers, and stops it on exit."""
    pytest.importorskip("uvicorn", reason="needs llama-cpp-python[server]")
    from simlab.backends.llamacpp import default_model_path

    port = free_port()
    path = log_dir / "server.log"
    with path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "simlab.backends.llamacpp_server", "--model",
             str(default_model_path()), "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models",
                                                timeout=2):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("llama_cpp.server did not come up:\n"
                                    + path.read_text()[-2000:])
                    time.sleep(0.5)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(20)
