"""The litellm adapter: litellm is imported and configured at first use, never at import,
and the internals simlab relies on still exist in the installed litellm."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from simlab.backends import litellm_adapter
from simlab.backends.litellm_adapter import import_litellm


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != litellm_adapter.COST_MAP_ENV}
    return {**env, **extra}


def test_first_use_imports_litellm_offline_and_only_then_configures_it() -> None:
    """The backend's first use (not ``import simlab``) imports litellm with no price-map
    fetch and no retry thread that could outlive the interpreter (it crashed a CI run),
    and changes only what the adapter's docstring lists; never the garbage collector."""
    code = (
        "import atexit, gc, json, logging, os, threading\n"
        "import simlab, simlab.backends.litellm_backend as m\n"
        "levels = lambda: [logging.getLogger(n).level for n in ('httpx', 'LiteLLM')]\n"
        "seen = [os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP'), levels()]\n"
        "n = atexit._ncallbacks()\n"
        "m.shared_loop(); m.shared_loop()\n"
        "seen.append(atexit._ncallbacks() - n)\n"
        "from simlab.backends.litellm_adapter import import_litellm\n"
        "lt = import_litellm(); import_litellm()\n"
        "m.is_transient(ValueError()); m.is_fatal(ValueError())\n"
        "m.stop_shared_loop()\n"
        "seen += [os.environ['LITELLM_LOCAL_MODEL_COST_MAP'], levels(), lt.num_retries,\n"
        "         hasattr(lt, '_simlab_configured'), gc.get_freeze_count(),\n"
        "         [t.name for t in threading.enumerate()]]\n"
        "print(json.dumps(seen))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [None, [0, 0], 1, "True", [40, 40], 0, False, 0,
                                       ["MainThread"]]
    assert "model cost map" not in done.stderr


def test_a_cost_map_setting_already_made_wins() -> None:
    code = ("import os\nfrom simlab.backends.litellm_adapter import import_litellm\n"
            "import_litellm(); print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_clean_env(LITELLM_LOCAL_MODEL_COST_MAP="TRUE"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "TRUE"


def test_freeze_gc_is_opt_in() -> None:
    code = ("import gc\nfrom simlab.backends.litellm_adapter import freeze_gc, import_litellm\n"
            "import_litellm(); before = gc.get_freeze_count(); freeze_gc()\n"
            "print(before, gc.get_freeze_count() > 100_000)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "True"]


def test_adapter_matches_installed_litellm() -> None:
    """Fails loudly when an upgrade of litellm moves what the adapter relies on."""
    litellm = import_litellm()
    assert litellm_adapter.supported(litellm) == []
    from importlib.metadata import version

    installed = version("litellm")
    if installed not in litellm_adapter.CHECKED_VERSIONS:
        pytest.fail(f"litellm {installed} is not among the checked versions "
                    f"{litellm_adapter.CHECKED_VERSIONS}: re-check simlab/backends/"
                    "litellm_adapter.py and add it")


def test_adapter_reports_what_a_changed_litellm_lacks() -> None:
    import types

    bare = types.SimpleNamespace(model_cost=None, ModelResponse=lambda: object())
    missing = litellm_adapter.supported(bare)
    assert "litellm.Timeout" in missing and "litellm.model_cost (a dict)" in missing
    assert "ModelResponse._hidden_params" in missing
    assert litellm_adapter.response_cost(object()) is None
    assert litellm_adapter.response_cost(types.SimpleNamespace(
        _hidden_params={"response_cost": 2})) == 2.0
