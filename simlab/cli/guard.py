"""Checks that must pass before Hydra writes anything: no secrets in config, one writer.

Hydra writes ``.hydra/{config,hydra,overrides}.yaml`` (and, for a sweep, ``multirun.yaml``,
job directory names and console lines) from the overrides *before* the task runs, so a key
given on the command line would be on disk before simlab could redact it. So simlab
refuses secrets in config outright, with an error that names the key and never its
value: keys come from environment variables only (``backend.api_key_env=NAME``).

- :func:`check_overrides` reads the raw command line before Hydra parses it;
- :class:`RunGuard`, a Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``),
  checks the composed config (YAML files included) at run start, and takes the run
  directory's lock there, so a refused second process writes nothing at all.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from simlab.store.manifest import SECRET_KEY_RE

#: ``scheme://user:password@host`` or ``scheme://token@host``.
_USERINFO_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\s@]+@")


class SecretInConfig(ValueError):
    """A secret was given in config; the message names where, never the value."""


def _secret_key(key: str) -> bool:
    """A config key that would hold a secret (``*_env`` keys hold a variable's name)."""
    return bool(SECRET_KEY_RE.search(key)) and not key.lower().endswith("_env")


def _problem(path: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if _secret_key(key):
        return (f"{path}: looks like a secret; simlab reads secrets from environment "
                "variables only: put it in one and name that variable "
                "(e.g. backend.api_key_env=OPENAI_API_KEY)")
    if isinstance(value, str) and _USERINFO_RE.search(value):
        return (f"{path}: the URL carries credentials (user:password@ or token@); remove "
                "them and put the key in an environment variable named by "
                "backend.api_key_env")
    return None


def check_overrides(argv: Sequence[str]) -> None:
    """Refuse secret-looking overrides on the command line, before Hydra sees them."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        path = key.lstrip("+~")
        for part in path.split("."):
            problem = _problem(f"override {path!r}", part, value)
            if problem:
                raise SecretInConfig(problem)
        problem = _problem(f"override {path!r}", "", value)
        if problem:
            raise SecretInConfig(problem)


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    from omegaconf import DictConfig, ListConfig

    if isinstance(node, DictConfig):
        for key in node:
            try:
                value = node[key]
            except Exception:  # an interpolation that cannot resolve: Hydra reports it
                continue
            yield from _walk_item(f"{path}.{key}" if path else str(key), str(key), value)
    elif isinstance(node, ListConfig):
        for i, value in enumerate(node):
            yield from _walk_item(f"{path}[{i}]", "", value)


def _walk_item(path: str, key: str, value: Any) -> Iterator[tuple[str, str, Any]]:
    from omegaconf import DictConfig, ListConfig

    if isinstance(value, DictConfig | ListConfig):
        if _secret_key(key) and len(value):
            yield path, key, "<nested>"
        yield from _walk(value, path)
    else:
        yield path, key, value


def check_config(cfg: Any) -> None:
    """Refuse a composed config (the task part, not ``hydra``) that holds a secret."""
    for path, key, value in _walk(cfg):
        if path == "hydra" or path.startswith("hydra."):
            continue
        problem = _problem(f"config key {path!r}", key, value)
        if problem:
            raise SecretInConfig(problem)


def _task_config(config: Any) -> dict | None:
    """The job's config as the runner sees it (without ``hydra``), or None if it only
    resolves inside a job (``${hydra:…}`` interpolations)."""
    from omegaconf import OmegaConf

    try:
        plain = OmegaConf.to_container(config, resolve=False, enum_to_str=True)
        assert isinstance(plain, dict)
        plain.pop("hydra", None)
        return OmegaConf.to_container(OmegaConf.create(plain), resolve=True, enum_to_str=True)
    except Exception:
        return None


def _fail(message: str) -> None:
    print(f"simlab: error: {message}", file=sys.stderr)
    sys.exit(2)


class RunGuard(Callback):
    """Hydra callback: secrets check and run-directory lock before Hydra writes files."""

    def __init__(self) -> None:
        self._locked: Path | None = None

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from simlab.store import StoreError
        from simlab.store import lock as run_lock

        self._check(config)
        run_dir = Path(str(config.hydra.run.dir))
        try:
            run_lock.acquire(run_dir)
        except StoreError as exc:
            _fail(str(exc))
        self._locked = run_dir
        task = _task_config(config)
        if task is not None:  # refuse another config's directory before .hydra/ is written
            from simlab.runner import check_resumable

            try:
                check_resumable(run_dir, task)
            except ValueError as exc:
                self.on_run_end(config)
                _fail(str(exc))

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        from simlab.store import lock as run_lock

        if self._locked is not None:
            run_lock.release(self._locked)
            self._locked = None

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config)
        sweep = Path(str(config.hydra.sweep.dir))
        try:
            sweep.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fail(f"{sweep}: cannot create the sweep directory ({exc.strerror})")

    @staticmethod
    def _check(config: Any) -> None:
        try:
            check_config(config)
        except SecretInConfig as exc:
            _fail(str(exc))
