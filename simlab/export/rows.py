"""Export rows: one per (episode, agent perspective), derived from the event log.

Each agent's conversation is its egocentric view (ECP, ``simlab.context``) of the
episode's stored events: its own turns as ``assistant``, what it perceived as ``user``
(speaker named), the persona as the system message. That is the shape a model is
fine-tuned on to *be* that persona. Trailing turns after the agent's last reply are
dropped (there is nothing to learn from them). The store does not keep the scenario's
full system prompt, so the system message is the persona card rebuilt from the
``agents`` row (plus the agent's role).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import ValidationError

from simlab.analysis.metrics import MetricTables
from simlab.backends.base import Message
from simlab.context import EgocentricProjector, ProjectionContext
from simlab.events import EventLog
from simlab.personas.model import Persona
from simlab.store import RunTables
from simlab.text import persona_card

#: Agent-level metric columns carried on each row, and episode-level ones (prefixed).
AGENT_METRICS = ("consistency", "consistency_margin", "drift_level", "drift_slope",
                 "echo_rate", "role_confusion_rate", "mean_turn_words", "question_rate")
EPISODE_METRICS = ("consistency", "drift_level", "echo_rate", "echo_trend",
                   "role_confusion_rate", "repetition", "distinct_2", "naturalness_distance")
_PERSONA_KEYS = ("id", "name", "age", "description", "gender", "occupation", "location",
                 "temperament", "speaking_style")


@dataclass(frozen=True)
class Filters:
    """Keep only episodes that pass every set bound (episodes lacking the metric fail)."""

    min_consistency: float | None = None
    max_echo_rate: float | None = None
    max_role_confusion: float | None = None
    max_naturalness_distance: float | None = None
    min_turns: int | None = None

    def apply(self, episodes: pl.DataFrame) -> pl.DataFrame:
        conds = []
        for col, bound, lower in (("consistency", self.min_consistency, True),
                                  ("echo_rate", self.max_echo_rate, False),
                                  ("role_confusion_rate", self.max_role_confusion, False),
                                  ("naturalness_distance", self.max_naturalness_distance, False),
                                  ("n_utterances", self.min_turns, True)):
            if bound is None:
                continue
            if col not in episodes.columns:
                raise ValueError(f"filter on {col!r} needs that metric (naturalness_distance "
                                 "needs --reference)")
            c = pl.col(col)
            conds.append((c >= bound) if lower else (c <= bound))
        if not conds:
            return episodes
        return episodes.filter(pl.all_horizontal(*[x.fill_null(False) for x in conds]))


def system_message(agent: dict[str, Any]) -> str:
    """The persona card of an ``agents`` row (facts alone where it is not a full persona,
    e.g. a reference corpus), plus the agent's role."""
    fields = {k: agent.get(k) for k in _PERSONA_KEYS if agent.get(k) is not None}
    fields["id"] = agent.get("persona_id") or agent.get("agent_id") or "x"
    for key in ("goals", "hobbies"):
        raw = agent.get(f"{key}_json")
        if raw:
            fields[key] = tuple(json.loads(raw))
    try:
        text = persona_card(Persona(**fields))
    except (ValidationError, TypeError, ValueError):
        text = f"You are {agent.get('name') or agent.get('agent_id')}.\n" \
               f"{agent.get('description') or ''}".strip()
    role = agent.get("role")
    if role and role not in (agent.get("name"), "participant", "member"):
        text += f"\nYour role in this conversation: {role}."
    return text


def _log(episode_id: str, events: pl.DataFrame) -> EventLog:
    log = EventLog(episode_id)
    for e in events.iter_rows(named=True):
        log.append(step=e["step"], speaker=e["speaker"], audience=tuple(e["audience"] or ()),
                   kind=e["kind"], content=e["content"] or "")
    return log


def egocentric(episode_id: str, events: pl.DataFrame, agents: Sequence[dict[str, Any]]
               ) -> tuple[EgocentricProjector, EventLog]:
    """The ECP projector and log of a stored episode: ``projector.view(agent, log)`` is
    what that agent saw, rebuilt from the events (export and the run browser use it)."""
    names = {a["agent_id"]: a["name"] for a in agents}
    ctx = ProjectionContext(system_prompts={a["agent_id"]: system_message(a) for a in agents},
                            names=names, participants=tuple(names))
    return EgocentricProjector(ctx), _log(episode_id, events)


def perspective(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Chat messages up to the agent's last reply; empty if it never replied."""
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    return [m.as_dict() for m in messages[: last + 1]] if last >= 0 else []


def episode_rows(run: RunTables, label: str, metrics: MetricTables,
                 filters: Filters = Filters()) -> list[dict[str, Any]]:
    """Rows for every kept episode and every agent that spoke in it."""
    keep = filters.apply(metrics.episodes)["episode_id"].to_list()
    ep_metrics = {r["episode_id"]: r for r in metrics.episodes.iter_rows(named=True)}
    ag_metrics = {(r["episode_id"], r["agent_id"]): r for r in metrics.agents.iter_rows(named=True)}
    scenario = ((run.manifest.get("config") or {}).get("scenario") or {}).get("name") \
        or str(run.episodes["scenario"][0] if run.episodes.height else "")
    default_model = str((run.manifest.get("backend") or {}).get("model", ""))
    events = run.events.partition_by("episode_id", as_dict=True, maintain_order=True)
    agents = run.agents.partition_by("episode_id", as_dict=True, maintain_order=True)
    rows: list[dict[str, Any]] = []
    for eid in keep:
        ev = events.get((eid,))
        ag = agents.get((eid,))
        if ev is None or ag is None:
            continue
        ag_rows = ag.to_dicts()
        projector, log = egocentric(eid, ev, ag_rows)
        models = Counter(m for s, m in zip(ev["speaker"], ev["model"], strict=True) if m)
        for a in ag_rows:
            msgs = perspective(projector.view(a["agent_id"], log))
            if not msgs:
                continue
            own = Counter(m for s, m in zip(ev["speaker"], ev["model"], strict=True)
                          if s == a["agent_id"] and m)
            am = ag_metrics.get((eid, a["agent_id"]), {})
            em = ep_metrics.get(eid, {})
            rows.append({
                "run": label, "episode_id": eid, "agent_id": a["agent_id"],
                "persona_id": a.get("persona_id"), "persona_name": a.get("name"),
                "role": a.get("role"), "persona": msgs[0]["content"] if msgs[0]["role"]
                == "system" else system_message(a),
                "scenario": scenario,
                "model": (own or models).most_common(1)[0][0] if (own or models)
                else default_model,
                "messages": msgs,
                "metrics": {**{k: _num(am.get(k)) for k in AGENT_METRICS},
                            **{f"episode_{k}": _num(em.get(k)) for k in EPISODE_METRICS}},
            })
    return rows


def _num(v: Any) -> float | None:
    return None if v is None else float(v)
