"""Optional extras a command line asks for, checked before Hydra starts.

Hydra reports a launcher it cannot import as "Error locating target …"; a user should
read which ``pip install`` to run instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

#: override → (module it needs, the install that provides it)
NEEDS = {
    "hydra/launcher=ray": ("hydra_plugins.hydra_ray_launcher", "pip install 'simlab[ray]'"),
    "executor=ray": ("ray", "pip install 'simlab[ray]'"),
}


def missing_extra(args: Sequence[str]) -> str | None:
    """The error for the first override in ``args`` whose extra is not installed."""
    for arg in args:
        need = NEEDS.get(arg.replace(" ", ""))
        if need is None:
            continue
        module, install = need
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"{arg} needs an optional extra that is not installed: {install}"
    return None
