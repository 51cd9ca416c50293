"""A dead or rejecting endpoint is a failed run, not a complete one, and is resumable.

Runs go through the litellm backend to ``tests/servers/fake_openai.py`` in a child
process on a fixed 127.0.0.1 port; the test kills it by PID mid-run and brings it back on
the same port, as an operator restarting a server would.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import polars as pl
import pytest
from rel_helpers import FakeServer, env, events, free_port, manifest, simlab, start_simlab, wait_for


def _args(url: str, run_dir: Path, *extra: str) -> list[str]:
    return ["backend=litellm", "backend.model=openai/fake-model", f"backend.api_base={url}",
            "backend.cache.enabled=false", "backend.timeout_s=2",
            "backend.retry.max_attempts=2", "backend.retry.initial_s=0.01",
            "backend.retry.max_s=0.02", "progress=false", "episodes=4",
            "max_failed_episodes=2", f"hydra.run.dir={run_dir}", *extra]


def _clean_run(port: int, run_dir: Path) -> None:
    with FakeServer(port, "--latency", "0.02") as server:
        done = simlab(*_args(server.url, run_dir))
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> pl.DataFrame:
    """The events of an undisturbed run: what every resumed run must equal."""
    run_dir = tmp_path_factory.mktemp("clean") / "run"
    _clean_run(free_port(), run_dir)
    return events(run_dir)


def test_endpoint_dying_mid_run_fails_the_run_and_a_resume_redoes_it(tmp_path, clean):
    port = free_port()
    run_dir = tmp_path / "run"
    server = FakeServer(port, "--latency", "0.05").start()
    try:
        proc = start_simlab(*_args(server.url, run_dir))
        wait_for(lambda: (run_dir / "episodes" / "ep00000").is_dir())
        server.stop()  # the endpoint dies during episode 1
        _out, err = proc.communicate(timeout=300)
    finally:
        server.stop()
    assert proc.returncode == 1, err
    assert "run failed: 2 episodes in a row ended by backend failures" in err
    m = manifest(run_dir)
    assert m["status"] == "failed" and "max_failed_episodes=2" in m["cause"]
    assert f"resume with: {m['resume_command']}" in err
    assert f'hydra.run.dir="{run_dir}"' in m["resume_command"]
    done = sorted(p.name for p in (run_dir / "episodes").iterdir())
    assert done == ["ep00000"]  # episodes 1 and 2 ended hollow and were not stored
    first = m["summary"]

    with FakeServer(port, "--latency", "0.02") as server:  # back on the same address
        # exactly the command the run printed
        resumed = subprocess.run(["bash", "-c", m["resume_command"]], capture_output=True,
                                 text=True, env=env(), timeout=300)
        assert server.requests() > 0
    assert resumed.returncode == 0, resumed.stderr
    assert f"({len(done)} already done)" in resumed.stdout
    m = manifest(run_dir)
    assert m["status"] == "complete" and m["cause"] is None
    assert [i["status"] for i in m["invocations"]] == ["failed", "complete"]
    # the summary and stats cover the whole run, not only the last invocation
    assert m["summary"]["episodes_done"] == 4
    assert m["summary"]["episodes_run"] == 4
    assert m["summary"]["turns"] == first["turns"] + m["invocations"][1]["summary"]["turns"]
    assert m["backend_stats"]["requests"] == sum(
        i["backend_stats"]["requests"] for i in m["invocations"])
    assert events(run_dir).equals(clean)


def test_401_on_every_call_stops_at_once_and_is_resumable(tmp_path, clean):
    port = free_port()
    run_dir = tmp_path / "run"
    with FakeServer(port, "--fault-rate", "1", "--faults", "401") as server:
        proc = simlab(*_args(server.url, run_dir))
        calls = server.requests()
    assert proc.returncode == 1, proc.stderr
    assert "run failed: backend unusable" in proc.stderr and "HTTP 401" in proc.stderr
    assert calls <= 2  # stopped on the first batch, not after every episode
    m = manifest(run_dir)
    assert m["status"] == "failed" and "401" in m["cause"]
    assert not list((run_dir / "episodes").iterdir())

    _clean_run(port, run_dir)  # the key is fixed: the same command now completes
    assert manifest(run_dir)["status"] == "complete"
    assert events(run_dir).equals(clean)


def test_a_few_failed_episodes_leave_the_run_incomplete_not_complete(tmp_path):
    port = free_port()
    run_dir = tmp_path / "run"
    # breaker off: every episode fails, none is stored, and the run says incomplete
    with FakeServer(port, "--fault-rate", "1", "--faults", "500") as server:
        proc = simlab(*_args(server.url, run_dir, "max_failed_episodes=0"))
    assert proc.returncode == 1, proc.stderr
    m = manifest(run_dir)
    assert m["status"] == "incomplete"
    assert len(m["invocations"][-1]["failed_episodes"]) == 4
    assert not list((run_dir / "episodes").iterdir())
