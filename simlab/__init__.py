"""simlab: simulate persona-conditioned LLM agents on a scheduler graph.

The public surface is small on purpose; see docs/architecture.md for the map.
"""

from simlab.events import Event, EventLog

__all__ = ["Event", "EventLog", "__version__"]
__version__ = "0.1.0"
