"""Sweeps on a real two-node Ray cluster, confined to 127.0.0.1 in a network namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from simlab.cli.extras import missing_extra
from simlab.events import WALL_CLOCK_COLUMNS
from simlab.store import load_run

HERE = Path(__file__).parent
SIMLAB = [sys.executable, "-m", "simlab.cli.main"]
BIN = Path(sys.executable).parent


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "--pid", "--fork", "true"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def on_cluster(tmp: Path, *cmd: str, timeout: float = 400) -> subprocess.CompletedProcess:
    """``cmd`` run beside a fresh two-node Ray cluster; the cluster is stopped by the
    PID of the namespace that holds it."""
    if not _namespaces_work():
        pytest.skip("needs unshare --net --pid (root or user namespaces) to confine Ray")
    ray_tmp = tempfile.mkdtemp(prefix="simlab-ray-", dir="/tmp")
    proc = subprocess.Popen(
        ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
         str(HERE / "servers" / "ray_cluster.sh"), str(tmp), str(BIN), *cmd],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "RAY_TMP": ray_tmp})
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()  # the namespace's first process: every Ray process goes with it
            proc.wait(30)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def _host(address: str) -> str:
    """``ss``'s local address without its port: ``[::ffff:127.0.0.1]:6390`` → 127.0.0.1."""
    host = address.rsplit(":", 1)[0].strip("[]")
    return host.removeprefix("::ffff:")


def _events(run_dir: Path):
    return load_run(run_dir).events.drop(list(WALL_CLOCK_COLUMNS))


@pytest.mark.ray
@pytest.mark.skipif(missing_extra(["hydra/launcher=ray"]) is not None,
                    reason="needs the ray extra: pip install 'simlab[ray]'")
def test_a_sweep_on_a_ray_cluster_gives_the_local_sweeps_events(tmp_path) -> None:
    jobs = ["seed=1,2,3,4", "backend=mock", "episodes=2", "progress=false"]
    local = subprocess.run([*SIMLAB, "-m", *jobs, f"hydra.sweep.dir={tmp_path}/local"],
                           capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    ray = on_cluster(tmp_path, *SIMLAB, "-m", *jobs, "hydra/launcher=ray",
                     "hydra.launcher.ray.init.address=127.0.0.1:6390",
                     f"hydra.sweep.dir={tmp_path}/ray")
    assert ray.returncode == 0, ray.stdout[-3000:]
    status = (tmp_path / "status.txt").read_text()
    assert status.count(" node_") == 2, status  # head and worker both took part
    hosts = {_host(line.split()[4]) for line in
             (tmp_path / "listening.txt").read_text().splitlines()[1:] if line.strip()}
    assert hosts and hosts <= {"127.0.0.1", "::1"}, hosts  # nothing else exists in there
    runs = sorted(p.parent.name for p in (tmp_path / "local").glob("*/manifest.json"))
    assert len(runs) == 4
    assert sorted(p.parent.name for p in (tmp_path / "ray").glob("*/manifest.json")) == runs
    for job in runs:
        a, b = _events(tmp_path / "local" / job), _events(tmp_path / "ray" / job)
        assert a.height > 0 and a.equals(b), job


def test_the_ray_launcher_without_the_extra_names_the_install(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("hydra_plugins.hydra_ray")
                        else real(name, *a))
    message = missing_extra(["seed=1,2", "hydra/launcher=ray"])
    assert message is not None and "pip install 'simlab[ray]'" in message
    assert missing_extra(["hydra/launcher=basic"]) is None
