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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from simlab.store.manifest import SECRET_KEY_RE, names_a_setting

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
    if _secret_key(key) and not names_a_setting(key, value):
        return (f"{path}: looks like a secret; simlab reads secrets from environment "
                "variables only: put it in one and name that variable "
                "(e.g. backend.api_key_env=OPENAI_API_KEY)")
    if isinstance(value, str) and _USERINFO_RE.search(value):
        return (f"{path}: the URL carries credentials (user:password@ or token@); remove "
                "them and put the key in an environment variable named by "
                "backend.api_key_env")
    return None


def _values(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) for every leaf in ``value``; a secret-named key that holds a
    nested value is reported as a leaf too."""
    if isinstance(value, Mapping):
        items = [(f"{path}.{k}" if path else str(k), str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(f"{path}[{i}]", "", v) for i, v in enumerate(value)]
    else:
        return
    for where, key, item in items:
        if isinstance(item, Mapping | list):
            if _secret_key(key) and item:
                yield where, key, "<nested>"
            yield from _values(item, where)
        else:
            yield where, key, item


def _override_values(arg: str) -> tuple[str, list[Any]]:
    """An override's key and every value it can take, parsed by Hydra's own grammar (a
    sweep's every choice, a dict's every entry); the raw text if it does not parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Transformer

    try:
        override = OverridesParser.create().parse_override(arg)
    except Exception:  # Hydra reports bad syntax itself; check the raw text meanwhile
        key, _, value = arg.partition("=")
        return key.lstrip("+~"), [value]
    if override.is_sweep_override():
        values = list(override.sweep_iterator(transformer=Transformer.identity))
    else:
        values = [override.value()]
    return override.key_or_group, values


def check_overrides(argv: Sequence[str]) -> None:
    """Refuse secret-looking overrides on the command line, before Hydra sees them:
    a secret-named key anywhere in the path or in a dict value, or credentials in a URL,
    in any value a sweep can take."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        path, values = _override_values(arg)
        where = f"override {path!r}"
        *parents, last = path.split(".")
        for value in values:
            if value is None:
                continue
            for part in parents:
                if _secret_key(part):
                    raise SecretInConfig(_problem(where, part, value) or where)
            for inner, key, item in _values({last: value}, ".".join(parents)):
                problem = _problem(where if inner == path else f"{where} (at {inner!r})",
                                   key, item)
                if problem:
                    raise SecretInConfig(problem)


def check_config(cfg: Any, *, task_only: bool = True) -> None:
    """Refuse a composed config that holds a secret. Of the ``hydra`` node only
    ``hydra.job.env_set`` is read (variables Hydra would write to ``hydra.yaml``)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        try:
            plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        except Exception:  # an interpolation that only resolves inside a job
            plain = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    else:
        plain = cfg
    assert isinstance(plain, Mapping)
    hydra = plain.get("hydra") or {}
    env_set = ((hydra.get("job") or {}).get("env_set") or {}) if isinstance(hydra, Mapping) \
        else {}
    body = {k: v for k, v in plain.items() if k != "hydra"}
    if not task_only or "hydra" in plain:
        body["hydra"] = {"job": {"env_set": dict(env_set)}}
    for path, key, value in _values(body, ""):
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
            from simlab.store.resume import check_resumable

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
