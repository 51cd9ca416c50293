"""Bad input gets one clear line naming the key, and leaves nothing behind: bad values,
config errors found late, full disks and read-only directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rel_helpers import manifest, simlab

MOCK = ["backend=mock", "progress=false"]


@pytest.mark.parametrize(("override", "message"), [
    ("episodes=-1", "episodes: must be >= 1, got -1"),
    ("scenario.max_tokens=-1", "scenario.max_tokens: must be >= 1, got -1"),
    ("scenario.temperature=-5", "scenario.temperature: must be in [0, 5], got -5"),
    ("scenario.top_p=0", "scenario.top_p: must be in (0, 1], got 0"),
    ("max_failed_episodes=-2", "max_failed_episodes: must be >= 0, got -2"),
])
def test_bad_values_are_refused_naming_the_key(tmp_path, override, message):
    proc = simlab(*MOCK, override, f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_config_error_found_late_leaves_a_directory_the_fix_can_use(tmp_path):
    run_dir = tmp_path / "run"
    bad = simlab(*MOCK, "scenario.min_turns=9", "scenario.max_turns=4",
                 f"hydra.run.dir={run_dir}")
    assert bad.returncode == 2 and "min_turns" in bad.stderr
    assert not (run_dir / "manifest.json").exists()
    fixed = simlab(*MOCK, "scenario.min_turns=2", "scenario.max_turns=4",
                   f"hydra.run.dir={run_dir}")
    assert fixed.returncode == 0, fixed.stderr
    assert manifest(run_dir)["status"] == "complete"


def test_population_keeps_hydras_reason_and_takes_hydra_run_dir(tmp_path):
    proc = simlab("population", "n=abc")
    assert proc.returncode == 2
    assert "n=abc" in proc.stderr or "'abc'" in proc.stderr
    assert "Value 'abc'" in proc.stderr or "could not be converted" in proc.stderr
    out = tmp_path / "pop"
    ok = simlab("population", "n=50", "--no-plot", f"hydra.run.dir={out}")
    assert ok.returncode == 0, ok.stderr
    assert (out / "personas.parquet").is_file()


# ----------------------------------------------------------------- disks that fail
@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs of our own under tmp_path (root only), unmounted afterwards."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {made.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.name.endswith(".tmp")
            or (p.parent.name == ".staging")]


def test_full_disk_is_one_clear_line_and_nothing_half_written(small_fs):
    filler = small_fs / "filler"
    with open(filler, "wb") as fh:  # leave about 96 KiB free: a few episodes' worth
        fh.write(b"\0" * (4 * 1024 * 1024 - 96 * 1024))
    run_dir = small_fs / "run"
    proc = simlab(*MOCK, "episodes=60", f"hydra.run.dir={run_dir}",
                  "hydra.job.chdir=false")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("simlab: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert _leftovers(run_dir) == []
    m = json.loads((run_dir / "manifest.json").read_text())  # whole JSON, never half
    assert m["status"] == "failed" and "No space left" in m["cause"], proc.stderr
    done = len(list((run_dir / "episodes").iterdir()))
    assert 0 < done < 60
    filler.unlink()  # space again: the same command resumes and completes
    again = simlab(*MOCK, "episodes=60", f"hydra.run.dir={run_dir}")
    assert again.returncode == 0, again.stderr
    assert f"({done} already done)" in again.stdout


def test_read_only_directory_is_one_clear_line(small_fs):
    (small_fs / "old").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    for target in (small_fs / "new" / "run", small_fs / "old"):
        proc = simlab(*MOCK, f"hydra.run.dir={target}")
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("simlab: error: ") and "Read-only file system" in lines[-1]
        assert "Traceback" not in proc.stderr
    assert os.listdir(small_fs / "old") == []


def test_native_crash_prints_where_it_happened(tmp_path):
    code = ("import sys; from simlab.cli import main as m; m.main(['graph']); "
            "import faulthandler; faulthandler._sigsegv()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "Fatal Python error: Segmentation fault" in proc.stderr
    assert 'File "<string>"' in proc.stderr
