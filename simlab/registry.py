"""Scenario registry: scenarios register themselves, and the engine never imports one.

A scenario package exposes a :class:`ScenarioSpec` and names it in its distribution's
entry points, group ``simlab.scenarios`` (simlab's own four do so in ``pyproject.toml``)::

    [project.entry-points."simlab.scenarios"]
    toy = "toy_scenario:SPEC"

``simlab scenario=toy`` then composes ``ToyConfig`` (its dataclass is the one home of its
defaults), builds ``ToyScenario`` with it, and ``simlab scenarios`` lists it. Nothing in
simlab is edited, as with pytest's or simonw/llm's plugins.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simlab.scenario import Scenario
    from simlab.scenario_config import ScenarioConfig

ENTRY_POINT_GROUP = "simlab.scenarios"


@dataclass(frozen=True)
class ScenarioSpec:
    """What the CLI and the runner need to know about a scenario."""

    name: str  # the config-group option: ``scenario=<name>``
    cls: type[Scenario]
    config: type[ScenarioConfig]
    # population group option selected with it (e.g. "census"); None keeps the run's
    default_population: str | None = None
    # engine settings it needs by default (keys of EngineConfig), e.g. {"max_reasks": 2}
    engine: Mapping[str, Any] = field(default_factory=dict)
    # memory settings it chooses by default (keys of MemoryConfig), e.g. {"policy":
    # "summary"} or {"roles": {"planner": "full"}}; ``memory=<policy>`` still wins
    memory: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""  # one line for ``simlab scenarios``; default: the class docstring's

    def describe(self) -> str:
        lines = (self.cls.__doc__ or "").strip().splitlines()
        return self.summary or (lines[0] if lines else "")


class UnknownScenario(ValueError):
    pass


@functools.cache
def scenario_specs() -> dict[str, ScenarioSpec]:
    """Every installed scenario, by name (loaded once per process; ``refresh`` reloads)."""
    found: dict[str, ScenarioSpec] = {}
    origin: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name} = {ep.value!r} (group {ENTRY_POINT_GROUP})"
        dist = getattr(ep, "dist", None)
        if dist is not None:
            where += f" of {dist.name}"
        try:
            spec = ep.load()
        except Exception as exc:
            raise ImportError(f"{where}: could not be loaded: {type(exc).__name__}: {exc}") \
                from exc
        if not isinstance(spec, ScenarioSpec):
            raise TypeError(f"{where}: is not a ScenarioSpec (got {type(spec).__name__})")
        if spec.name != ep.name:
            raise ValueError(f"{where}: names spec {spec.name!r}; the names must match")
        if spec.name in found and found[spec.name] != spec:
            raise ValueError(f"scenario {spec.name!r} is registered twice: {origin[spec.name]} "
                             f"and {where}")
        found[spec.name], origin[spec.name] = spec, where
    return dict(sorted(found.items()))


def refresh() -> None:
    """Forget the loaded entry points (after installing a scenario in this process)."""
    scenario_specs.cache_clear()


def get_spec(name: str) -> ScenarioSpec:
    specs = scenario_specs()
    try:
        return specs[name]
    except KeyError:
        raise UnknownScenario(f"scenario {name!r} is not installed (installed: "
                              f"{', '.join(specs) or 'none'})") from None


def spec_of_run(scenario_config: Mapping[str, Any]) -> ScenarioSpec:
    """The spec that ran a stored run, from its manifest's ``config.scenario``.

    Presets share a class (``group_dialogue`` runs are ``dialogue``), so the lookup is by
    the scenario's own ``name``, which every stored config has.
    """
    name = scenario_config.get("name")
    if not name:
        raise UnknownScenario("config.scenario.name is missing")
    specs = scenario_specs()
    if name in specs:
        return specs[name]
    for spec in specs.values():
        if spec.cls.name == name:
            return spec
    return get_spec(str(name))
