"""An engine's whole state between two ticks, as bytes: what a checkpoint holds.

Pickled together, so references between them survive: the scenario (a Mesa model:
agents, graph, RNG, scenario state), the projector's context, the schedule policy, the
memory policies and the failure streak. What only grows is not in that pickle: the
event log, the call journal (:mod:`simlab.research.journal`) and the scenario's
:attr:`~simlab.scenario.Scenario.append_only` attributes (per-tick tables,
histories). :func:`capture` returns what they gained since the previous checkpoint as a
**segment** (events as plain tuples, about 1 µs an event), so a
checkpoint costs what the last K ticks added, not the whole history, and
:func:`restore` refills them from every segment in order. Projected views are not
stored either: they are a deterministic function of the log, rebuilt on an agent's first
turn after a restore. The backend, embedder and callbacks are detached while pickling
and re-bound on restore, so a checkpoint never holds a connection, a model or a secret.
"""

from __future__ import annotations

import copy
import pickle
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from simlab.events import EVENT_COLUMNS, Event

if TYPE_CHECKING:
    from simlab.backends.base import Backend
    from simlab.scenario import Scenario
    from simlab.scheduler.engine import TickEngine
    from simlab.scheduler.settings import EngineConfig

_ROW = attrgetter(*EVENT_COLUMNS)
#: What a segment starts after: ``{"events": n, <attribute>: n or {key: n}}``.
Marks = dict[str, Any]


def grown_names(scenario: Scenario) -> tuple[str, ...]:
    """What of ``scenario`` only grows besides its log: its call journal and its
    :attr:`~simlab.scenario.Scenario.append_only` attributes."""
    return ("calls", *scenario.append_only)


def marks(scenario: Scenario) -> Marks:
    """How long the log and each append-only attribute of ``scenario`` are now."""
    return _lengths(len(scenario.log), {n: getattr(scenario, n) for n in grown_names(scenario)})


def _lengths(n_events: int, grown: dict[str, Any]) -> Marks:
    out: Marks = {"events": n_events}
    for name, value in grown.items():
        out[name] = {k: len(v) for k, v in value.items()} if isinstance(value, dict) \
            else len(value)
    return out


def _tail(value: Any, since: Any) -> Any:
    if isinstance(value, dict):
        since = since if isinstance(since, dict) else {}
        return {k: list(v[since.get(k, 0):]) for k, v in value.items()}
    return list(value[since or 0:])


def _emptied(name: str, value: Any) -> Any:
    """An empty container like ``value`` (a dict keeps its keys, a defaultdict its
    factory), to pickle in its place."""
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        out = copy.copy(value)
        for key in out:
            out[key] = []
        return out
    if isinstance(value, list):
        return []
    raise TypeError(f"append_only attribute {name!r}: must be a list or a dict of lists, "
                    f"got {type(value).__name__}")


def capture(engine: TickEngine, since: Marks | None = None) -> tuple[bytes, bytes]:
    """``engine``'s state and the segment of what grew after ``since`` (call between
    ticks only)."""
    sc, log, projector = engine.scenario, engine.scenario.log, engine.projector
    since = since or {}
    memories = engine._memories
    names = grown_names(sc)
    grown = {name: _tail(getattr(sc, name), since.get(name)) for name in names}
    segment = pickle.dumps({"events": [_ROW(e) for e in log.since(since.get("events", 0))],
                            "grown": grown}, protocol=pickle.HIGHEST_PROTOCOL)
    grown_now = {name: getattr(sc, name) for name in names}
    emptied = {name: _emptied(name, value) for name, value in grown_now.items()}
    kept = (sc.backend, sc.__dict__.pop("_engine", None), log._events, log._inbox,
            projector._views, {name: m.counter for name, m in memories.items()}, grown_now)
    try:
        sc.backend, log._events, log._inbox, projector._views = None, [], {}, {}
        for name, value in emptied.items():
            setattr(sc, name, value)
        for m in memories.values():
            m.counter = None  # type: ignore[assignment]
        state: dict[str, Any] = {
            "scenario": sc, "projector": projector, "policy": engine.policy,
            "memories": memories, "consecutive_failures": engine.consecutive_failures,
            "marks": _lengths(len(kept[2]), kept[6]),
        }
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        sc.backend, log._events, log._inbox, projector._views = kept[0], kept[2], kept[3], \
            kept[4]
        for name, value in kept[6].items():
            setattr(sc, name, value)
        if kept[1] is not None:
            sc._engine = kept[1]
        for name, m in memories.items():
            m.counter = kept[5][name]
    return blob, segment


def restore(state: bytes, segments: list[bytes], backend: Backend, *,
            settings: EngineConfig, **engine: Any) -> TickEngine:
    """A :class:`TickEngine` in the state captured in ``state`` and ``segments``."""
    from simlab.scheduler.engine import TickEngine

    # the run's own checkpoint (see simlab.store.checkpoint on trusting run directories)
    saved = pickle.loads(state)
    sc = saved["scenario"]
    events: list[Event] = []
    for raw in segments:
        seg = pickle.loads(raw)
        events += [Event(*row) for row in seg["events"]]
        for name, tail in seg["grown"].items():
            value = getattr(sc, name)
            if isinstance(value, dict):
                for key, items in tail.items():
                    value.setdefault(key, []).extend(items)
            else:
                value.extend(tail)
    held = marks(sc) | {"events": len(events)}
    if held != saved["marks"]:
        raise ValueError(f"the segments hold {held}, the state lists {saved['marks']}")
    sc.log.restore(events)
    restored = TickEngine(sc, backend, settings=settings, **engine)
    restored.projector = saved["projector"]
    restored.policy = saved["policy"]
    restored.consecutive_failures = saved["consecutive_failures"]
    restored._memories = saved["memories"]
    for m in restored._memories.values():
        m.counter = backend
        m.bind(restored.projector, lambda: restored.scenario.log, restored.embedder)
    return restored
