"""What is on disk is whole: one writer per run directory, and broken episodes redone.

Two ``simlab`` processes started together on one run directory used to corrupt it (3 of
10 trials); a refused second run used to delete the live run's staging area and
overwrite its ``.hydra/config.yaml``; a truncated table in a committed episode used to be
"already done" forever.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from rel_helpers import env, events, manifest, simlab, start_simlab, wait_for

from simlab.store import RunStore, StoreError, load_run
from simlab.store.lock import RunLockedError, holder, is_locked
from simlab.store.verify import check_episode

HERE = Path(__file__).resolve().parent
MOCK = ["backend=mock", "progress=false"]
SLOW = ["backend=mock", "backend._target_=_slow_backend.SlowMock", "progress=false"]


def _whole(run_dir: Path, n: int) -> None:
    """The run is complete and every episode verifies (all tables, consistent rows)."""
    m = manifest(run_dir)
    assert m["status"] == "complete", m.get("cause")
    tables = load_run(run_dir)
    assert sorted(tables.episodes["episode_id"]) == [f"ep{i:05d}" for i in range(n)]
    for d in (run_dir / "episodes").iterdir():
        assert check_episode(d) is None, d
    assert tables.events.select("episode_id", "seq").is_duplicated().sum() == 0


def test_twenty_pairs_of_simultaneous_starts_corrupt_nothing(tmp_path):
    clean = tmp_path / "clean"
    assert simlab(*MOCK, "episodes=3", f"hydra.run.dir={clean}").returncode == 0
    reference = events(clean)
    race = subprocess.run([sys.executable, str(HERE / "_race.py"), "20", str(tmp_path / "r"),
                           *MOCK, "episodes=3"], capture_output=True, text=True, env=env(),
                          timeout=600)
    assert race.returncode == 0, race.stderr
    refused = 0
    for result in json.loads(race.stdout.splitlines()[-1]):
        run_dir, codes, logs = Path(result["run_dir"]), result["codes"], result["logs"]
        # one ran it; the other was refused (2), or came after it and found it done (0)
        assert sorted(codes) in ([0, 0], [0, 2]), result
        for code, log in zip(codes, logs, strict=True):
            if code == 2:
                refused += 1
                assert "is in use by PID" in log and f"on host {socket.gethostname()}" in log
                assert "Traceback" not in log
        _whole(run_dir, 3)
        assert events(run_dir).equals(reference), run_dir
        assert not list((run_dir / ".staging").iterdir())
    assert refused > 0  # the race really happened
    print(f"{refused} of 20 pairs: the second start was refused while the first ran")


def test_refused_second_run_touches_nothing(tmp_path):
    run_dir, hold = tmp_path / "run", tmp_path / "hold"
    live = start_simlab(*SLOW, "episodes=30", f"hydra.run.dir={run_dir}",
                        SIMLAB_TEST_HOLD=str(hold))
    try:
        wait_for(lambda: (run_dir / "episodes" / "ep00000").is_dir())
        hold.touch()  # the live run waits in its next backend call until the checks end
        time.sleep(1)  # let a call already past the hold finish and its writes land
        info = holder(run_dir)
        assert info and info["pid"] == live.pid
        staging = (run_dir / ".staging").stat().st_ino
        watched = [run_dir / "manifest.json", run_dir / ".hydra" / "config.yaml",
                   run_dir / ".hydra" / "hydra.yaml"]

        def stamp(p: Path) -> tuple:  # a rewrite with the same bytes still changes these
            st = p.stat()
            return p.read_bytes(), st.st_ino, st.st_mtime_ns

        before = {p: stamp(p) for p in watched}
        for other in (["seed=5"], []):  # another config, and the same one
            second = simlab(*SLOW, "episodes=30", f"hydra.run.dir={run_dir}", *other)
            assert second.returncode == 2, second.stderr
            assert f"is in use by PID {live.pid}" in second.stderr
            assert "Traceback" not in second.stderr
            assert {p: stamp(p) for p in watched} == before
            assert (run_dir / ".staging").stat().st_ino == staging  # not deleted
        assert live.poll() is None, "the live run ended before the checks"
    finally:
        hold.unlink(missing_ok=True)
        rc = live.wait(300)
    assert rc == 0, live.stderr.read()
    _whole(run_dir, 30)
    # after it ended: a different config is refused before Hydra rewrites .hydra/
    config_yaml = stamp(run_dir / ".hydra" / "config.yaml")
    refused = simlab(*SLOW, "episodes=30", "seed=5", f"hydra.run.dir={run_dir}")
    assert refused.returncode == 2 and "different config (keys ['seed'])" in refused.stderr
    assert stamp(run_dir / ".hydra" / "config.yaml") == config_yaml
    assert manifest(run_dir)["status"] == "complete"


def test_lock_is_refused_in_process_and_released_on_close(tmp_path):
    with RunStore(tmp_path) as store:
        store.write_manifest({"seed": 1})
        assert holder(tmp_path)["pid"] == os.getpid()
    assert holder(tmp_path) is None
    # a child process holding the lock refuses this one, naming it
    hold = tmp_path / "hold"
    hold.touch()  # the child waits in its first backend call, holding the lock
    child = start_simlab(*SLOW, "episodes=1", f"hydra.run.dir={tmp_path / 'r'}",
                         SIMLAB_TEST_HOLD=str(hold))
    try:
        wait_for(lambda: holder(tmp_path / "r") is not None)
        with pytest.raises(RunLockedError, match=f"PID {child.pid}"):
            RunStore(tmp_path / "r")
    finally:
        hold.unlink()
        assert child.wait(300) == 0


def _run_in_process(run_dir: Path, episodes: int = 3) -> None:
    from conftest import compose

    from simlab.runner import run

    run(compose("backend=mock", "progress=false", f"episodes={episodes}"), run_dir)


@pytest.mark.parametrize("damage", ["truncate", "delete", "rows", "commit"])
def test_broken_committed_episode_is_reported_and_redone(tmp_path, capsys, damage):
    run_dir, clean = tmp_path / "run", tmp_path / "clean"
    for d in (run_dir, clean):
        _run_in_process(d)
    victim = run_dir / "episodes" / "ep00001" / "events.parquet"
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    elif damage == "delete":
        victim.unlink()
    elif damage == "rows":  # a readable file that lost rows
        pl.read_parquet(victim).head(2).write_parquet(victim)
    else:
        (victim.parent / "_commit.json").write_text("{not json")
    assert check_episode(victim.parent) is not None
    if damage in ("truncate", "delete"):
        with pytest.raises(StoreError, match="ep00001"):
            load_run(run_dir)  # an unreadable episode is named, not hidden
    capsys.readouterr()

    _run_in_process(run_dir)
    err = capsys.readouterr().err
    assert "episode ep00001" in err and "was broken" in err
    m = manifest(run_dir)
    assert m["invocations"][-1]["summary"]["episodes_run"] == 1
    _whole(run_dir, 3)
    assert events(run_dir).equals(events(clean))
    kept = list((run_dir / ".broken").iterdir())
    assert [p.name.split(".")[0] for p in kept] == ["ep00001"]  # kept for inspection


def test_commit_record_lists_every_table_with_its_rows(tmp_path):
    _run_in_process(tmp_path, episodes=1)
    ep = tmp_path / "episodes" / "ep00000"
    record = json.loads((ep / "_commit.json").read_text())["rows"]
    assert record == {name: pl.read_parquet(ep / name).height for name in record}
    assert set(record) == {"events.parquet", "agents.parquet", "episode.parquet",
                           "calls.parquet"}  # calls: the call journal a fork replays


def test_a_run_made_before_this_change_resumes(tmp_path, capsys):
    """A manifest from an older simlab: no key the newer config added, a redacted
    api_key_env, no invocations. It still resumes, and its work stays in the totals."""
    run_dir = tmp_path / "run"
    _run_in_process(run_dir, episodes=2)
    m = manifest(run_dir)
    del m["config"]["max_failed_episodes"]  # a key an older simlab did not have
    m["config"]["backend"]["model"] = "***REDACTED***"  # as old manifests held api_key_env
    old_summary = m["invocations"][0]["summary"]
    for key in ("invocations", "cause"):
        m.pop(key)
    (run_dir / "manifest.json").write_text(json.dumps(m))
    _run_in_process(run_dir, episodes=3)
    m = manifest(run_dir)
    assert m["status"] == "complete" and len(m["invocations"]) == 2
    assert m["summary"]["turns"] == old_summary["turns"] + m["invocations"][1]["summary"][
        "turns"]
    assert m["summary"]["episodes_done"] == 3


def test_printed_resume_command_resumes_a_sweep_job(tmp_path):
    sweep = tmp_path / "sweep"
    first = simlab("-m", *MOCK, "episodes=2", "seed=0,1", "projection=egocentric",
                   f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr
    commands = [line.split("resume with: ", 1)[1] for line in first.stderr.splitlines()
                if "resume with: " in line]
    assert len(commands) == 2 and all("," in c and "=" in c for c in commands)
    again = subprocess.run(["bash", "-c", commands[1]], capture_output=True, text=True,
                           env=env(), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "0 episodes (2 already done)" in again.stdout


def test_terminated_run_says_interrupted_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_simlab(*SLOW, "episodes=6", f"hydra.run.dir={run_dir}")
    wait_for(lambda: (run_dir / "episodes" / "ep00000").is_dir())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 143
    m = manifest(run_dir)
    assert m["status"] == "interrupted" and m["cause"] == "interrupted"
    assert not is_locked(run_dir)  # the lock went with the process
    done = len(list((run_dir / "episodes").iterdir()))
    again = simlab(*SLOW, "episodes=6", f"hydra.run.dir={run_dir}")
    assert again.returncode == 0 and f"({done} already done)" in again.stdout
