"""Start pairs of ``simlab`` processes at the same instant on one run directory.

``python _race.py TRIALS ROOT ARGS…``: imports simlab once, then for each trial forks two
children that block on one pipe; closing it releases both at once, so they reach the run
directory together (closer together than two interpreters that each import simlab for
seconds). Each child runs ``simlab ARGS… hydra.run.dir=ROOT/trialNN`` with its output in
files beside the run. Prints one JSON line: per trial, the two exit codes and outputs.
The parent waits for every child it forked, by PID.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import hydra  # noqa: F401  imported once here, so each forked child starts at once

import simlab.cli.guard
import simlab.runner  # noqa: F401
from simlab.cli.main import main


def _child(release: int, args: list[str], log: Path) -> None:
    os.read(release, 1)  # blocks until the parent closes the write end
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 1
    try:
        code = main(args) or 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def trial(k: int, root: Path, args: list[str]) -> dict:
    run_dir = root / f"trial{k:02d}"
    read, write = os.pipe()
    pids, logs = [], []
    for j in range(2):
        log = root / f"trial{k:02d}.{j}.log"
        pid = os.fork()
        if pid == 0:
            os.close(write)
            _child(read, [*args, f"hydra.run.dir={run_dir}"], log)
        pids.append(pid)
        logs.append(log)
    os.close(read)
    os.close(write)  # go
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    return {"run_dir": str(run_dir), "codes": codes,
            "logs": [log.read_text(errors="replace") for log in logs]}


if __name__ == "__main__":
    n, root, rest = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    root.mkdir(parents=True, exist_ok=True)
    print(json.dumps([trial(k, root, rest) for k in range(n)]))
