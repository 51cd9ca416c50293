"""simlab: simulate persona-conditioned LLM agents on a scheduler graph.

The public surface is small on purpose; see docs/architecture.md for the map.
"""

import os

# simlab makes no network call it was not configured to make. Imported without this,
# litellm fetches its price map from GitHub and, offline, retries in a daemon thread
# (litellm-model-cost-map-retry) that can still be in C code at interpreter exit, where
# it crashes the process. Set here, it holds for whatever imports litellm after simlab;
# set LITELLM_LOCAL_MODEL_COST_MAP=false to let litellm fetch.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from simlab.events import Event, EventLog

__all__ = ["Event", "EventLog", "__version__"]
__version__ = "0.1.0"
