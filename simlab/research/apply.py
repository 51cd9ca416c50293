"""Applying interventions (:mod:`simlab.research.interventions`) to a running episode.

The engine asks :func:`due` at the start of every tick which interventions apply now:
those whose ``at`` is this tick, and any conditional one (``when:``) from its ``at`` on,
the first time its test holds on the scenario's :meth:`~simlab.scenario.Scenario.
indicators`. Whether a conditional one has fired is read from the log (its
``intervention`` event), so a resumed checkpoint or a fork's replay agrees with the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simlab.events import ENV, INTERVENTION
from simlab.personas.labels import persona_label
from simlab.research.interventions import Intervention, changed_persona

if TYPE_CHECKING:
    from simlab.scenario import Scenario
    from simlab.scheduler.engine import TickEngine


def due(interventions: Sequence[Intervention], sc: Scenario, step: int
        ) -> list[Intervention]:
    """The interventions to apply at the start of tick ``step``, in spec order."""
    now = [iv for iv in interventions if iv.at == step and iv.when is None]
    waiting = [iv for iv in interventions if iv.when is not None and iv.at <= step]
    if waiting:
        fired = {json.loads(e.data).get("intervention") for e in sc.log
                 if e.kind == INTERVENTION and e.speaker == ENV and e.data}
        state = sc.indicators()
        now += [iv for iv in waiting if iv.index not in fired and iv.when.holds(state)]
    return sorted(now, key=lambda iv: iv.index)


def audience_of(sc: Scenario, iv: Intervention) -> tuple[str, ...]:
    """The agents of this episode a broadcast reaches, in participant order."""
    form, arg = iv.audience
    present = [k for k in sc.participants if k not in sc.retired]
    if form == "all":
        return tuple(present)
    if form == "role":
        return tuple(k for k in present if sc.by_key[k].role == arg)
    if form == "group":
        attr, wanted = arg
        return tuple(k for k in present if persona_label(sc.by_key[k].persona, attr) == wanted)
    chosen = set(arg)
    return tuple(k for k in present if k in chosen)


def apply_all(engine: TickEngine, now: Sequence[Intervention], step: int) -> None:
    """Apply ``now`` in order at the start of tick ``step``, each recorded as an event
    (a conditional one with the indicator values that made its test hold)."""
    sc = engine.scenario
    state = sc.indicators() if any(iv.when is not None for iv in now) else {}
    for iv in now:
        data = iv.describe()
        if iv.when is not None:
            data["state"] = iv.when.values(state)
        audience: tuple[str, ...] = ()
        content = ""
        if iv.kind == "broadcast":
            audience = audience_of(sc, iv)
            content = iv.text
        else:
            content, outcome = _apply(sc, iv)
            data.update(outcome)
        sc.log.append(step=step, speaker=ENV, audience=audience, kind=INTERVENTION,
                      content=content, data=json.dumps(data, ensure_ascii=False))
    engine.refresh_agents()


def _apply(sc: Scenario, iv: Intervention) -> tuple[str, dict[str, Any]]:
    """Apply a non-broadcast intervention; its event text and what it did."""
    here = [a for a in iv.agents if a in sc.by_key and a not in sc.retired]
    if iv.kind == "set":
        sc.config = sc.config_with(iv.key, iv.value)
        sc.reconfigure(iv.key)
        return f"scenario.{iv.key} = {iv.value!r}", {}
    if iv.kind == "persona":
        for key in here:
            agent = sc.by_key[key]
            agent.persona = changed_persona(agent.persona, iv.field, iv.value,
                                            f"interventions[{iv.index}].value")
            sc.persona_changed(key)
        return f"{iv.field} of {', '.join(here) or 'no agent here'} = {iv.value!r}", \
            {"applied": here}
    if iv.kind == "add_agent":
        assert iv.persona is not None
        if iv.persona.id in sc.by_key:
            return f"{iv.persona.id} is already here", {"applied": []}
        connect = [k for k in iv.connect if k in sc.by_key and k not in sc.retired]
        agent = sc.admit(iv.persona, iv.role, connect)
        return f"{agent.key} joins", {"applied": [agent.key], "connected": connect}
    if iv.kind == "remove_agent":
        for key in here:
            sc.retire(key)
            sc.retired.add(key)
        return f"{', '.join(here) or 'no agent here'} leave(s)", {"applied": here}
    edges = [(a, b) for a, b in iv.edges if a in sc.by_key and b in sc.by_key
             and a not in sc.retired and b not in sc.retired]
    if iv.kind == "add_edges":
        sc.graph.add_edges_from(edges)
    else:
        sc.graph.remove_edges_from(edges)
    sc.graph_changed()
    verb = "added" if iv.kind == "add_edges" else "removed"
    return f"{len(edges)} edge(s) {verb}", {"applied": [list(e) for e in edges]}
