"""Where simlab reaches into litellm: its import, its globals and two private hooks.

Nothing here runs at import; :func:`import_litellm` applies it all once, at the litellm
backend's first use (``import simlab`` changes nothing process-wide). What changes, why:

- ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (``setdefault``: a value already set wins) in
  ``os.environ`` before litellm is imported: otherwise its import fetches the price map
  from GitHub and, offline, retries in a daemon thread (litellm-model-cost-map-retry) that
  can still be in C code at interpreter exit, where it crashes the process. simlab makes
  no network call it was not configured to make; set it to ``false`` to let litellm fetch.
- ``litellm.suppress_debug_info = True`` (no banner or hints on stderr),
  ``litellm.num_retries = 0`` (retrying is simlab's retry wrapper's job), and
  ``telemetry = False`` in the versions that still have it.
- The ``LiteLLM``, ``LiteLLM Router``, ``LiteLLM Proxy`` and ``httpx`` loggers at
  ``ERROR``: litellm logs each call at INFO through them (httpx: one line per request).

Private APIs read: the logging worker's ``flush`` (:func:`flush_logging_worker`) and a
response's ``_hidden_params["response_cost"]`` (:func:`response_cost`) and
``_hidden_params["api_base"]``, the server a Router sent it to (:func:`served_by`). Process-wide
settings a program may want are offered, never applied: :func:`freeze_gc`.

Checked against litellm ``CHECKED_VERSIONS``;
``tests/test_litellm_backend.py::test_adapter_matches_installed_litellm`` fails loudly if
an upgrade moves any of it.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import os
import threading
from typing import Any

CHECKED_VERSIONS = ("1.110.2",)
COST_MAP_ENV = "LITELLM_LOCAL_MODEL_COST_MAP"
QUIET_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx")
#: Exception classes the backend classifies errors by (public, but checked all the same).
ERRORS = ("Timeout", "APIConnectionError", "RateLimitError", "InternalServerError",
          "ServiceUnavailableError", "AuthenticationError", "PermissionDeniedError",
          "NotFoundError")

_CONFIGURED = False
_LOCK = threading.Lock()


def import_litellm() -> Any:
    """The ``litellm`` module, imported offline and configured (once) as described above."""
    global _CONFIGURED
    if _CONFIGURED:
        import litellm

        return litellm
    with _LOCK:
        os.environ.setdefault(COST_MAP_ENV, "True")
        import litellm

        if not _CONFIGURED:
            litellm.suppress_debug_info = True
            litellm.num_retries = 0
            if hasattr(litellm, "telemetry"):  # gone in recent versions
                litellm.telemetry = False
            for name in QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
            _CONFIGURED = True
    return litellm


def freeze_gc() -> None:
    """Move every object alive now out of the cyclic collector's reach (``gc.freeze``).

    Opt-in, for programs (the CLI) to call once the backend is built: litellm's import
    leaves ~400k long-lived objects that every full collection would rescan (0.2-0.5 s a
    pass at 1,000 agents). Process-wide, so a library never calls it by itself.
    """
    gc.freeze()


async def flush_logging_worker() -> None:
    """Drain litellm's queued logging callbacks on the running loop.

    Left queued, litellm's own atexit hook would replay them on a second loop while the
    backend's loop still runs them. A no-op where the private worker has moved.
    """
    with contextlib.suppress(Exception):
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

        await GLOBAL_LOGGING_WORKER.flush()


def response_cost(response: Any) -> float | None:
    """The price litellm put on a response while making it, if it did."""
    cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    return None if cost is None else float(cost)


def served_by(response: Any) -> str | None:
    """The ``api_base`` of the deployment a Router call went to, if litellm says."""
    base = (getattr(response, "_hidden_params", None) or {}).get("api_base")
    return str(base) if base else None


def supported(litellm: Any) -> list[str]:
    """What this adapter relies on that the given litellm lacks; empty if all is there."""
    missing = [f"litellm.{name}" for name in (*ERRORS, "acompletion", "completion_cost",
                                              "Router") if not hasattr(litellm, name)]
    if not isinstance(getattr(litellm, "model_cost", None), dict):
        missing.append("litellm.model_cost (a dict)")
    missing += [f"litellm.{name}" for name in ("suppress_debug_info", "num_retries")
                if not hasattr(litellm, name)]
    try:
        from litellm.litellm_core_utils import get_model_cost_map
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError as exc:
        return [*missing, f"litellm.litellm_core_utils ({exc})"]
    if COST_MAP_ENV not in inspect.getsource(get_model_cost_map):
        missing.append(f"get_model_cost_map reading {COST_MAP_ENV}")
    if not inspect.iscoroutinefunction(getattr(GLOBAL_LOGGING_WORKER, "flush", None)):
        missing.append("GLOBAL_LOGGING_WORKER.flush (a coroutine)")
    if not isinstance(getattr(litellm.ModelResponse(), "_hidden_params", None), dict):
        missing.append("ModelResponse._hidden_params")
    return missing
