"""Interventions: changes made to a running world from outside it, declared in config.

``interventions=[{at: 5, kind: broadcast, text: "...", audience: all}, ...]`` (a list,
so Hydra can sweep it). Each is applied at the start of tick ``at``, before anyone acts,
and written as an ``intervention`` event, so projection, analysis, transcripts and
export all see it. Kinds:

- ``broadcast``: ``text`` to an ``audience`` (``all``, ``role:<role>``,
  ``group:<attr>=<value>`` or a list of agent ids), who perceive it as narration;
- ``set``: ``key: scenario.<field>`` to ``value``, for the fields the scenario declares
  in :attr:`~simlab.scenario.Scenario.settable`;
- ``persona``: ``field`` of the ``agents``' personas (``attributes.<name>`` for an
  attribute) to ``value``; their system prompts change from that tick on;
- ``add_agent`` (``persona``: an id from the run's population, or a whole persona;
  ``role``; ``connect``: agent ids) and ``remove_agent`` (``agents``), where the
  scenario supports them;
- ``add_edges`` / ``remove_edges``: ``edges``, a list of ``[a, b]`` pairs.

Any of them may carry ``when: "<indicator> <op> <number>"``
(:mod:`simlab.research.conditions`): it is then applied once, at the first tick from
``at`` on (default 0) at which the test holds.

Specs are checked here before the run starts, against the scenario and the population,
and a bad one is an error naming ``interventions[i].<field>``; :mod:`simlab.research.apply`
applies them. Applying one is deterministic
and draws nothing from the RNG, so the ticks before it are unchanged, which is what a
fork relies on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from simlab.personas.labels import persona_label
from simlab.personas.model import Persona, one_line
from simlab.research.conditions import Condition, parse_condition

if TYPE_CHECKING:
    from simlab.scenario import Scenario

#: kind -> (required fields, optional fields), besides ``at`` and ``kind``
FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "broadcast": (frozenset({"text"}), frozenset({"audience"})),
    "set": (frozenset({"key", "value"}), frozenset()),
    "persona": (frozenset({"agents", "field", "value"}), frozenset()),
    "add_agent": (frozenset({"persona"}), frozenset({"role", "connect"})),
    "remove_agent": (frozenset({"agents"}), frozenset()),
    "add_edges": (frozenset({"edges"}), frozenset()),
    "remove_edges": (frozenset({"edges"}), frozenset()),
}
KINDS = tuple(FIELDS)


class InterventionError(ValueError):
    """A bad intervention spec; the message names ``interventions[i].<field>``."""


@dataclass(frozen=True)
class Intervention:
    """One checked intervention spec."""

    index: int
    at: int
    kind: str
    text: str = ""
    audience: tuple[str, Any] = ("all", None)  # (form, argument)
    key: str = ""  # a set's scenario field, without the ``scenario.`` prefix
    value: Any = None
    agents: tuple[str, ...] = ()
    field: str = ""
    persona: Persona | None = None
    role: str = ""
    connect: tuple[str, ...] = ()
    edges: tuple[tuple[str, str], ...] = ()
    when: Condition | None = None

    def describe(self) -> dict[str, Any]:
        """The spec as recorded in the event's ``data``."""
        out: dict[str, Any] = {"intervention": self.index, "kind": self.kind, "at": self.at}
        if self.when is not None:
            out["when"] = self.when.text
        if self.kind == "broadcast":
            form, arg = self.audience
            out["audience"] = form if arg is None else {form: _plain(arg)}
        elif self.kind == "set":
            out.update(key=f"scenario.{self.key}", value=_plain(self.value))
        elif self.kind == "persona":
            out.update(agents=list(self.agents), field=self.field, value=_plain(self.value))
        elif self.kind == "add_agent":
            assert self.persona is not None
            out.update(persona=self.persona.id, role=self.role, connect=list(self.connect))
        elif self.kind == "remove_agent":
            out["agents"] = list(self.agents)
        else:
            out["edges"] = [list(e) for e in self.edges]
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def parse_interventions(items: Sequence[Any], scenario: type[Scenario],
                        population: Sequence[Persona] = ()) -> list[Intervention]:
    """Check the config's ``interventions`` against ``scenario`` and the population."""
    known = {p.id: p for p in population}
    out: list[Intervention] = []
    removed: dict[str, int] = {}
    for i, item in enumerate(items):
        iv = _parse(i, item, known)
        _check_supported(iv, scenario)
        if "when" in item:
            iv = replace(iv, when=_condition(item["when"], i, scenario))
        if iv.kind == "remove_agent":
            removed.update({a: i for a in iv.agents})
        if iv.persona is not None and iv.persona.id in removed:
            raise InterventionError(f"interventions[{i}].persona: {iv.persona.id!r} is "
                                    f"removed by interventions[{removed[iv.persona.id]}]; "
                                    f"an agent that left cannot join again")
        known.update({iv.persona.id: iv.persona} if iv.persona is not None else {})
        out.append(iv)
    return out


def _parse(i: int, item: Any, population: Mapping[str, Persona]) -> Intervention:
    where = f"interventions[{i}]"
    if not isinstance(item, Mapping):
        raise InterventionError(f"{where}: must be a mapping like {{at: 3, kind: broadcast, "
                                f"text: ...}}, got {type(item).__name__}")
    kind = item.get("kind")
    if kind not in FIELDS:
        raise InterventionError(f"{where}.kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    at = item.get("at", 0 if "when" in item else None)
    if isinstance(at, bool) or not isinstance(at, int) or at < 0:
        raise InterventionError(f"{where}.at: must be a tick, an integer >= 0, got {at!r}")
    required, optional = FIELDS[kind]
    for name in sorted(set(item) - required - optional - {"at", "kind", "when"}):
        raise InterventionError(f"{where}.{name}: not a field of a {kind} intervention "
                                f"(its fields: at, kind, {', '.join(sorted(required | optional))})")
    for name in sorted(required - set(item)):
        raise InterventionError(f"{where}.{name}: required for a {kind} intervention")
    args: dict[str, Any] = {}
    if kind == "broadcast":
        args["text"] = _text(item["text"], f"{where}.text")
        args["audience"] = _audience(item.get("audience", "all"), f"{where}.audience",
                                     population)
    elif kind == "set":
        key = item["key"]
        if not isinstance(key, str) or not key.startswith("scenario.") or "." in key[9:]:
            raise InterventionError(f"{where}.key: must be scenario.<field>, got {key!r}")
        args.update(key=key[9:], value=item["value"])
    elif kind == "persona":
        args["agents"] = _ids(item["agents"], f"{where}.agents", population)
        args.update(field=_persona_field(item["field"], f"{where}.field"), value=item["value"])
        for pid in args["agents"]:  # the change must make a valid persona of each
            if pid in population:
                changed_persona(population[pid], args["field"], args["value"],
                                f"{where}.value")
    elif kind == "add_agent":
        args["persona"] = _persona(item["persona"], f"{where}.persona", population)
        role = item.get("role", "")
        if not isinstance(role, str):
            raise InterventionError(f"{where}.role: must be text, got {role!r}")
        try:
            one_line(role)
        except ValueError as exc:
            raise InterventionError(f"{where}.role: {exc}") from None
        args.update(role=role, connect=_ids(item.get("connect", []), f"{where}.connect",
                                            population, empty=True))
    elif kind == "remove_agent":
        args["agents"] = _ids(item["agents"], f"{where}.agents", population)
    else:
        args["edges"] = _edges(item["edges"], f"{where}.edges", population)
    return Intervention(index=i, at=at, kind=kind, **args)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InterventionError(f"{where}: must be non-empty text, got {value!r}")
    return value.strip()


def _ids(value: Any, where: str, population: Mapping[str, Persona],
         empty: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or (not value and not empty) or \
            not all(isinstance(v, str) for v in value):
        raise InterventionError(f"{where}: must be a list of agent ids, got {value!r}")
    unknown = [v for v in value if v not in population]
    if unknown:
        raise InterventionError(f"{where}: {unknown} are not persona ids of the run's "
                                f"population (nor added by an earlier intervention)")
    return tuple(value)


def _audience(value: Any, where: str, population: Mapping[str, Persona]) -> tuple[str, Any]:
    if value == "all":
        return "all", None
    if isinstance(value, str) and value.startswith("role:") and value[5:]:
        return "role", value[5:]
    if isinstance(value, str) and value.startswith("group:"):
        attr, eq, wanted = value[6:].partition("=")
        if not eq or not attr or not wanted:
            raise InterventionError(f"{where}: a group is group:<attribute>=<value>, "
                                    f"got {value!r}")
        values = {persona_label(p, attr) for p in population.values()}
        if population and wanted not in values:
            raise InterventionError(f"{where}: no persona of the run's population has "
                                    f"{attr}={wanted} (its values: "
                                    f"{', '.join(sorted(values)[:12])})")
        return "group", (attr, wanted)
    if isinstance(value, Mapping) and set(value) == {"agents"}:
        value = value["agents"]
    if isinstance(value, str) and value.startswith("agents:"):
        value = [v.strip() for v in value[7:].split(",") if v.strip()]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "agents", _ids(value, where, population)
    raise InterventionError(f"{where}: must be all, role:<role>, group:<attr>=<value> or a "
                            f"list of agent ids, got {value!r}")


def _persona_field(value: Any, where: str) -> str:
    # not the name: views label earlier events by the speaker's current name, so a
    # renamed speaker would rewrite the past in a view rebuilt after a checkpoint
    fields = set(Persona.model_fields) - {"id", "attributes", "name"}
    if isinstance(value, str) and (value in fields or
                                   (value.startswith("attributes.") and len(value) > 11)):
        return value
    raise InterventionError(f"{where}: must be a persona field ({', '.join(sorted(fields))}) "
                            f"or attributes.<name>, got {value!r}")


def changed_persona(persona: Persona, field: str, value: Any, where: str) -> Persona:
    """``persona`` with ``field`` set to ``value``, validated as a persona."""
    data = persona.model_dump()
    if field.startswith("attributes."):
        data["attributes"] = {**data["attributes"], field[11:]: value}
    else:
        data[field] = value
    try:
        return Persona.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InterventionError(f"{where}: {value!r} is not a valid {field} "
                                f"({first['msg']})") from None


def _persona(value: Any, where: str, population: Mapping[str, Persona]) -> Persona:
    if isinstance(value, str):
        if value not in population:
            raise InterventionError(f"{where}: {value!r} is not a persona id of the run's "
                                    f"population")
        return population[value]
    if not isinstance(value, Mapping):
        raise InterventionError(f"{where}: must be a persona id or a persona mapping, "
                                f"got {value!r}")
    try:
        return Persona.model_validate(dict(value))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise InterventionError(f"{where}.{loc}: {first['msg']}") from None


def _edges(value: Any, where: str, population: Mapping[str, Persona]
           ) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise InterventionError(f"{where}: must be a list of [a, b] pairs, got {value!r}")
    out = []
    for j, pair in enumerate(value):
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InterventionError(f"{where}[{j}]: must be a pair [a, b], got {pair!r}")
        a, b = _ids(list(pair), f"{where}[{j}]", population)
        out.append((a, b))
    return tuple(out)


def _check_supported(iv: Intervention, scenario: type[Scenario]) -> None:
    where = f"interventions[{iv.index}]"
    if iv.kind not in scenario.intervention_kinds:
        raise InterventionError(
            f"{where}.kind: the {scenario.name} scenario does not support {iv.kind} "
            f"interventions (it supports: {', '.join(sorted(scenario.intervention_kinds))})")
    if iv.kind == "set" and iv.key not in scenario.settable:
        can = ", ".join(f"scenario.{k}" for k in scenario.settable) or "nothing"
        raise InterventionError(f"{where}.key: the {scenario.name} scenario cannot set "
                                f"scenario.{iv.key} during an episode (it can set: {can})")


def _condition(text: Any, i: int, scenario: type[Scenario]) -> Condition:
    try:
        return parse_condition(text, f"interventions[{i}].when", scenario.indicator_names,
                               scenario.name)
    except ValueError as exc:
        raise InterventionError(str(exc)) from None


def check_values(interventions: Sequence[Intervention], scenario: Scenario) -> None:
    """Each ``set`` value against the scenario's config (its types and checks), and
    each kind against the scenario's settings."""
    config = scenario.config
    roles = {a.role for a in scenario.by_key.values()} | {iv.role or "member" for iv in
                                                            interventions if iv.persona}
    try:
        for iv in sorted(interventions, key=lambda iv: (iv.at, iv.index)):
            problem = scenario.refuses(iv.kind)
            if problem:
                raise InterventionError(f"interventions[{iv.index}].kind: {iv.kind}: "
                                        f"{problem}")
            if iv.audience[0] == "role" and iv.audience[1] not in roles:
                raise InterventionError(f"interventions[{iv.index}].audience: no agent has "
                                        f"role {iv.audience[1]!r} (roles: "
                                        f"{', '.join(sorted(roles))})")
            if iv.kind == "set":  # in order: each against the config the earlier ones left
                try:
                    scenario.config = scenario.config_with(iv.key, iv.value)
                except (ValueError, TypeError) as exc:
                    raise InterventionError(f"interventions[{iv.index}].value: {exc}") \
                        from None
    finally:
        scenario.config = config
