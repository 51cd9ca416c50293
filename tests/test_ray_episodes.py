"""``executor=ray``: a run's episodes on a real two-node Ray cluster confined to 127.0.0.1.

Each run is compared event by event with the same run on the local executor; the
cluster is the one :func:`test_ray.on_cluster` starts (and stops by its namespace's PID).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import polars as pl
import pytest
from test_ray import SIMLAB, _events, on_cluster

from simlab.cli.extras import missing_extra

pytestmark = [pytest.mark.ray, pytest.mark.skipif(
    missing_extra(["executor=ray"]) is not None,
    reason="needs the ray extra: pip install 'simlab[ray]'")]

ON_CLUSTER = ["executor=ray", "executor.address=127.0.0.1:6390"]
#: Kill the second node (its raylet and every process under it) once the run has
#: committed its first episode; then wait for the run.
KILL_SECOND_NODE = r"""
"$@" & run=$!
until ls "$RUN"/episodes/*/_commit.json >/dev/null 2>&1; do
  kill -0 $run 2>/dev/null || break; sleep 0.1; done
tree() { for c in $(pgrep -P "$1"); do tree "$c"; done; echo "$1"; }
victims=$(for p in $(cat "$TMP/worker_node.pids"); do
  [ "$(ps -o comm= -p "$p")" = raylet ] && tree "$p"; done)
echo "killing the second node: $(echo $victims | wc -w) processes"
kill -9 $victims
ls "$RUN"/episodes >"$TMP/committed_at_kill.txt"
wait $run
"""


def _local(run_dir: Path, *overrides: str) -> None:
    done = subprocess.run([*SIMLAB, *overrides, f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def _nodes(run_dir: Path) -> set[str]:
    """The Ray nodes the driver logged each committed episode as coming from."""
    lines = (run_dir / "main.log").read_text().splitlines()
    return {line.rsplit("on Ray node ", 1)[1].rstrip(")") for line in lines
            if "on Ray node " in line}


def _same_as_local(tmp: Path, ray_dir: Path, *overrides: str) -> None:
    _local(tmp / "local", *overrides)
    a, b = _events(tmp / "local"), _events(ray_dir)
    assert a.height > 0 and a.equals(b)
    m = _manifest(ray_dir)
    assert m["status"] == "complete", m.get("cause")
    assert m["summary"]["episodes_done"] == m["summary"]["episodes_planned"]


def test_eight_episodes_on_ray_give_the_local_executors_events(tmp_path) -> None:
    """3 episodes run locally first: the Ray run resumes the same run directory and
    plays only the other 5, and the whole equals 8 episodes run locally."""
    run = ["backend=mock", "episodes=8", "progress=false", "seed=5"]
    ray_dir = tmp_path / "ray"
    _local(ray_dir, *run[:-1], "episodes=3", "seed=5")
    done = on_cluster(tmp_path, *SIMLAB, *run, *ON_CLUSTER, f"hydra.run.dir={ray_dir}")
    assert done.returncode == 0, done.stdout[-3000:]
    _same_as_local(tmp_path, ray_dir, *run)
    last = _manifest(ray_dir)["invocations"][-1]
    assert last["summary"]["episodes_run"] == 5 and last["summary"]["episodes_skipped"] == 3
    stats = last["backend_stats"]
    assert stats["ray_workers"] == {"started": 2, "lost": 0}
    played = _events(ray_dir).filter(pl.col("kind") == "utterance",
                                     pl.col("episode_id").is_in([f"ep0000{i}"
                                                                 for i in range(3, 8)]))
    assert stats["requests"] == played.height
    assert len(_nodes(ray_dir)) == 2  # both nodes played episodes


@pytest.mark.embedded
def test_two_embedded_episodes_on_ray_give_the_local_executors_events(tmp_path) -> None:
    run = ["episodes=2", "progress=false", "backend.n_threads=1",
           "backend.cache.enabled=false"]
    done = on_cluster(tmp_path, *SIMLAB, *run, *ON_CLUSTER, f"hydra.run.dir={tmp_path}/ray",
                      timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    _same_as_local(tmp_path, tmp_path / "ray", *run)
    assert _manifest(tmp_path / "ray")["backend_stats"]["ray_workers"]["started"] == 2


def test_a_killed_worker_node_loses_only_its_episode(tmp_path) -> None:
    run = ["backend=mock", "backend.latency_s=0.05", "episodes=8", "progress=false",
           "seed=9"]
    ray_dir = tmp_path / "ray"
    done = on_cluster(tmp_path, "env", f"RUN={ray_dir}", f"TMP={tmp_path}", "bash", "-c",
                      KILL_SECOND_NODE, "kill", *SIMLAB, *run, *ON_CLUSTER,
                      f"hydra.run.dir={ray_dir}")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "killing the second node" in done.stdout
    committed = (tmp_path / "committed_at_kill.txt").read_text().split()
    assert 1 <= len(committed) < 8, committed  # the kill came mid-run
    assert "its worker died while playing episode" in done.stdout
    _same_as_local(tmp_path, ray_dir, *run)  # nothing lost, nothing twice
    episodes = sorted(p.name for p in (ray_dir / "episodes").iterdir())
    assert len(episodes) == 8
    assert _manifest(ray_dir)["backend_stats"]["ray_workers"]["lost"] >= 1


def test_backend_failures_on_ray_stop_the_run_as_failed_and_store_nothing(tmp_path) -> None:
    """Every call fails: each episode ends by backend failures, is not stored, and the
    circuit breaker stops the run as failed, with its cause, as the local executor does."""
    run = ["backend=mock", "backend.fail_every=1", "episodes=4", "max_failed_episodes=2",
           "progress=false", "backend.retry.max_attempts=1"]
    ray_dir = tmp_path / "ray"
    done = on_cluster(tmp_path, *SIMLAB, *run, *ON_CLUSTER, f"hydra.run.dir={ray_dir}")
    assert done.returncode == 1, done.stdout[-3000:]
    m = _manifest(ray_dir)
    assert m["status"] == "failed"
    assert "2 episodes in a row ended by backend failures" in m["cause"]
    assert m["summary"]["episodes_done"] == 0
    assert not list((ray_dir / "episodes").glob("*/_commit.json"))
