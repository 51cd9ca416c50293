"""An engine's whole state between two ticks, as bytes: what a checkpoint holds.

Pickled together, so references between them survive: the scenario (a Mesa model:
agents, graph, RNG, scenario state), the projector's context, the schedule policy, the
memory policies and the failure streak. The event log is not in that pickle: it is
append-only, so :func:`capture` returns only the events since the last checkpoint, as
plain tuples (about 1 µs an event), and :func:`restore` refills the log from every
segment. Projected views are not stored either: they are a deterministic function of
the log, rebuilt on an agent's first turn after a restore. The backend and callbacks are
detached while pickling and re-bound on restore, so a checkpoint never holds a
connection, a model or a secret.
"""

from __future__ import annotations

import pickle
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from simlab.events import EVENT_COLUMNS, Event

if TYPE_CHECKING:
    from simlab.backends.base import Backend
    from simlab.scheduler.engine import TickEngine
    from simlab.scheduler.settings import EngineConfig

_ROW = attrgetter(*EVENT_COLUMNS)


def capture(engine: TickEngine, since: int = 0) -> tuple[bytes, bytes]:
    """``engine``'s state and its events from ``since`` on (call between ticks only)."""
    sc, log, projector = engine.scenario, engine.scenario.log, engine.projector
    memories = engine._memories
    events = pickle.dumps([_ROW(e) for e in log.since(since)], protocol=pickle.HIGHEST_PROTOCOL)
    kept = (sc.backend, sc.__dict__.pop("_engine", None), log._events, log._inbox,
            projector._views, {name: m.counter for name, m in memories.items()})
    sc.backend, log._events, log._inbox, projector._views = None, [], {}, {}
    for m in memories.values():
        m.counter = None  # type: ignore[assignment]
    try:
        state: dict[str, Any] = {
            "scenario": sc, "projector": projector, "policy": engine.policy,
            "memories": memories, "consecutive_failures": engine.consecutive_failures,
            "n_events": len(kept[2]),
        }
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        sc.backend, log._events, log._inbox, projector._views = kept[0], kept[2], kept[3], \
            kept[4]
        if kept[1] is not None:
            sc._engine = kept[1]
        for name, m in memories.items():
            m.counter = kept[5][name]
    return blob, events


def restore(state: bytes, segments: list[bytes], backend: Backend, *,
            settings: EngineConfig, **engine: Any) -> TickEngine:
    """A :class:`TickEngine` in the state captured in ``state`` and ``segments``."""
    from simlab.scheduler.engine import TickEngine

    # the run's own checkpoint (see simlab.store.checkpoint on trusting run directories)
    saved = pickle.loads(state)
    events = [Event(*row) for seg in segments for row in pickle.loads(seg)]
    if len(events) != saved["n_events"]:
        raise ValueError(f"the segments hold {len(events)} events, the state "
                         f"{saved['n_events']}")
    sc = saved["scenario"]
    sc.log.restore(events)
    restored = TickEngine(sc, backend, settings=settings, **engine)
    restored.projector = saved["projector"]
    restored.policy = saved["policy"]
    restored.consecutive_failures = saved["consecutive_failures"]
    restored._memories = saved["memories"]
    for m in restored._memories.values():
        m.counter = backend
        m.bind(restored.projector, lambda: restored.scenario.log)
    return restored
