"""simlab: simulate persona-conditioned LLM agents on a scheduler graph.

The public surface is small on purpose; see docs/architecture.md for the map. Importing
simlab changes no process-wide state (environment, logging, gc, exit hooks, matplotlib);
what a backend needs is applied at its first use (e.g. :mod:`simlab.backends.litellm_adapter`).
"""

from simlab.events import Event, EventLog

__all__ = ["Event", "EventLog", "__version__"]
__version__ = "0.1.0"
