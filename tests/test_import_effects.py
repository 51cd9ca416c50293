"""Importing simlab changes nothing process-wide (issue 13: no hidden global effects).

A fresh interpreter records the process-wide state a library could change behind its
user's back (environment, garbage collector, exit hooks, matplotlib's backend, logger
levels), imports every module under ``simlab`` and ``scenarios`` (found by walking the
packages, so moved or new modules are covered), and records it again. Settings of that
kind belong to the CLI, or to a first use that asks for them.

Third-party packages set some themselves when imported (polars sets ``_RJEM_MALLOC_CONF``,
scikit-learn ``KMP_DUPLICATE_LIB_OK``); those are not simlab's to remove. So a first run
lists the third-party modules the walk imports, and a second imports them before its
first record: what changes after that is simlab's own doing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Only these may be missing (optional extras); any other import failure fails the test.
OPTIONAL_EXTRAS = ("vllm", "torch", "transformers", "gguf", "accelerate")

#: Modules simlab loads on first use only: slow to import, and with effects of their own.
FIRST_USE_ONLY = ("litellm", "matplotlib.pyplot", "llama_cpp", "torch", "transformers")

#: A minimal environment: nothing set by this pytest process (which has imported simlab)
#: may leak in and hide a variable that importing simlab would set.
_KEEP_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "SYSTEMROOT")

_PROBE = r"""
import atexit, gc, importlib, importlib.util, json, logging, os, pkgutil, sys, traceback

import matplotlib  # before simlab: its backend setting is then observable

OPTIONAL = set(sys.argv[1].split(","))
PRELOAD = json.loads(sys.argv[2])
LOGGERS = ("", "httpx", "litellm", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
OURS = ("simlab", "scenarios")

for name in PRELOAD:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # then its effects count as simlab's: a false alarm at worst


def state():
    return {
        "environ": dict(os.environ),
        "gc_enabled": gc.isenabled(),
        "gc_freeze_count": gc.get_freeze_count(),
        "atexit_callbacks": atexit._ncallbacks(),
        "mpl_backend": matplotlib.rcParams._get_backend_or_none(),
        "logger_levels": {n or "root": logging.getLogger(n).level for n in LOGGERS},
        "root_handlers": len(logging.getLogger().handlers),
    }


def optional_missing(exc):
    root = (exc.name or "").partition(".")[0]
    return root in OPTIONAL and importlib.util.find_spec(root) is None


before = state()
known = set(sys.modules)
imported, skipped, failed = [], {}, {}


def visit(name):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if optional_missing(exc):
            skipped[name] = exc.name
            return
        failed[name] = traceback.format_exc()
        return
    except Exception:
        failed[name] = traceback.format_exc()
        return
    imported.append(name)
    for info in pkgutil.iter_modules(getattr(module, "__path__", None) or []):
        if info.name != "__main__":  # running a __main__ module would start a program
            visit(f"{name}.{info.name}")


for top in OURS:
    visit(top)
after = state()
third_party = [m for m in sys.modules if m not in known and m.partition(".")[0] not in OURS
               and m.partition(".")[0] not in sys.stdlib_module_names]
print(json.dumps({"before": before, "after": after, "imported": imported, "skipped": skipped,
                  "failed": failed, "modules": sorted(sys.modules), "third_party": third_party}))
"""


def _probe(preload: list[str]) -> dict:
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    args = [sys.executable, "-c", _PROBE, ",".join(OPTIONAL_EXTRAS), json.dumps(preload)]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _changes(before: dict, after: dict) -> dict:
    env_b, env_a = before["environ"], after["environ"]
    changed = {k: after[k] for k in before if k != "environ" and after[k] != before[k]}
    changed |= {f"environ[{k}]": v for k, v in env_a.items() if env_b.get(k) != v}
    changed |= {f"environ[{k}]": "<removed>" for k in env_b.keys() - env_a.keys()}
    return changed


def test_importing_every_module_changes_no_process_wide_state() -> None:
    first = _probe([])
    assert not first["failed"], "modules failed to import:\n" + "\n".join(
        f"{name}:\n{tb}" for name, tb in first["failed"].items())
    assert "simlab.backends.litellm_backend" in first["imported"]
    assert "simlab.analysis.plots" in first["imported"]
    assert len(first["imported"]) > 50, first["imported"]  # the walk found the packages
    loaded = [m for m in FIRST_USE_ONLY if m in first["modules"]]
    assert loaded == [], "an import pulled in a module simlab should load on first use"
    second = _probe(first["third_party"])
    assert set(second["imported"]) == set(first["imported"])
    assert _changes(second["before"], second["after"]) == {}, "simlab's import changed it"
    # Skipped modules are reported, not hidden (vllm is not installed everywhere).
    print("skipped (optional extras missing):", first["skipped"] or "none")
    print("set by third-party imports:", _changes(first["before"], first["after"]))
