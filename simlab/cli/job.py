"""What the CLI does for one Hydra job besides running it: the command that resumes it,
and the ``.hydra/`` files, written only once the job may write its run directory.

Hydra itself would write ``.hydra/{config,hydra,overrides}.yaml`` before the task runs,
before simlab could check the config for secrets, take the run directory's lock, or refuse
a directory that holds another config's run; in a sweep, a job's swept values (a config
group chosen per job) are only known then. So ``conf/config.yaml`` sets
``hydra.output_subdir: null`` and :func:`write_hydra_files` writes the same three files
from the runner's ``on_start`` hook, after those checks.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from simlab.cli.guard import SecretInConfig, check_config
from simlab.store.manifest import atomic_write_text

HYDRA_SUBDIR = ".hydra"
#: Hydra overrides that name where a job runs; the resume command names the run directory.
_PLACE_KEYS = ("hydra.run.dir", "hydra.sweep.", "hydra.mode", "hydra.job.num",
               "hydra.job.id")


def write_hydra_files(run_dir: Path, cfg: Any, hc: Any) -> None:
    """Hydra's three job files, written atomically into ``RUN/.hydra/``."""
    from omegaconf import OmegaConf

    out = Path(run_dir) / HYDRA_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "config.yaml": OmegaConf.to_yaml(cfg),
        "hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hc})),
        "overrides.yaml": OmegaConf.to_yaml(OmegaConf.create(list(hc.overrides.task))),
    }
    for name, text in files.items():
        atomic_write_text(out / name, text)


def _hydra_quoted(value: str) -> str:
    """A value in Hydra's override grammar: quoted, so ``=``, ``,`` and ``:`` (sweep job
    directory names hold them) stay part of it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def resume_command(hc: Any, run_dir: Path) -> str:
    """The shell command that resumes this job: the same config sources and overrides,
    this run directory. It starts with ``cd`` into the current directory, because
    relative paths in the config (persona files, the cache) resolve from there."""
    # the console script as it was called (.venv/bin/simlab after `make run`), else -m
    prog = [sys.argv[0]] if os.path.basename(sys.argv[0]) == "simlab" else [
        sys.executable, "-m", "simlab.cli.main"]
    args: list[str] = []
    for source in hc.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            args += ["--config-dir", str(source.path)]
    if hc.job.config_name not in (None, "config"):
        args += ["--config-name", str(hc.job.config_name)]
    hydra = [o for o in hc.overrides.hydra if not o.lstrip("+~").startswith(_PLACE_KEYS)]
    args += [*hc.overrides.task, *hydra, f"hydra.run.dir={_hydra_quoted(str(run_dir))}"]
    return f"cd {shlex.quote(os.getcwd())} && {shlex.join([*prog, *args])}"


class JobFailed(RuntimeError):
    """A sweep job that did not complete (already reported); Hydra runs the sweep's other
    jobs and fails the sweep at its end."""


def _started(run_dir: Path, cfg: Any, hc: Any) -> None:
    """The run passed its checks and built its backend: write ``.hydra/``, and (a
    process-wide choice only the CLI makes) take what is alive now out of the garbage
    collector's full passes; litellm's import leaves ~400k long-lived objects."""
    from simlab.backends.litellm_adapter import freeze_gc

    write_hydra_files(run_dir, cfg, hc)
    freeze_gc()


def run_job(cfg: Any) -> None:
    """One Hydra job: run it, print where it went, exit non-zero unless it is complete."""
    import logging

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    from simlab.backends.base import BackendError
    from simlab.runner import RunFailed, run

    # A full disk must not turn every log line into a "--- Logging error ---" traceback.
    logging.raiseExceptions = False
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir).resolve()
    again = resume_command(hc, run_dir)
    print(f"simlab: run directory {run_dir}\n        resume with: {again}", file=sys.stderr)
    code, message = 0, ""
    try:
        check_config(cfg)  # this job's config: in a sweep, its swept groups too
        check_config({"hydra": {"job": {"env_set": hc.job.env_set}}}, task_only=False)
        summary = run(cfg, run_dir, resume_command=again,
                      on_start=lambda where: _started(where, cfg, hc))
    except RunFailed as exc:
        code, message = 1, f"simlab: run {exc.status}: {exc}\n        resume with: {again}"
    except KeyboardInterrupt:
        print(f"simlab: run interrupted\n        resume with: {again}", file=sys.stderr)
        sys.exit(130)
    except (SecretInConfig, ValueError, BackendError, FileNotFoundError,
            OmegaConfBaseException) as exc:  # a refused directory (locked) is a ValueError
        code, message = 2, f"simlab: error: {exc}"
    except OSError as exc:  # a full disk, a read-only directory: one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        code, message = 2, f"simlab: error: {where}{exc.strerror or exc}"
    if code:
        print(message, file=sys.stderr)
        if hc.mode == RunMode.MULTIRUN:
            raise JobFailed(message.splitlines()[0]) from None
        sys.exit(code)
    s = summary.as_dict()
    print(
        f"simlab: {s['episodes_run']} episodes ({s['episodes_skipped']} already done), "
        f"{s['turns']} turns, {s['failures']} failures in {s['wall_s']:.1f}s → {run_dir}\n"
        f"        ended: {s['terminations']}\n"
        f"        transcripts: simlab show {run_dir}\n"
        f"        in a browser: simlab ui {run_dir}"
    )
