"""Schedule policies: who acts on a tick.

A policy is a small object with ``select(scenario, step) -> list[agent key]``. It borrows
the scenario's RNG (never its own), so schedules are reproducible from the run seed.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simlab.scenario import Scenario


class SchedulePolicy(ABC):
    """Picks the actors of one tick."""

    name: str = "policy"

    @abstractmethod
    def select(self, scenario: Scenario, step: int) -> list[str]:
        """Agent keys that act at ``step``; every one of them is asked in one batch."""


class RoundRobin(SchedulePolicy):
    """Agents speak in turn, in the scenario's participant order."""

    name = "round_robin"

    def select(self, scenario: Scenario, step: int) -> list[str]:
        order = scenario.participants
        return [order[step % len(order)]]


class RandomSpeaker(SchedulePolicy):
    """A uniformly random speaker; by default never the same one twice in a row."""

    name = "random"

    def __init__(self, allow_repeat: bool = False) -> None:
        self.allow_repeat = allow_repeat

    def select(self, scenario: Scenario, step: int) -> list[str]:
        pool = list(scenario.participants)
        last = scenario.last_speaker
        if not self.allow_repeat and last in pool and len(pool) > 1:
            pool.remove(last)
        return [pool[int(scenario.rng.integers(len(pool)))]]


class GraphNeighbours(SchedulePolicy):
    """The next speaker is a random graph neighbour of the last one.

    Models turn-taking in groups where you answer someone who could hear you. If the last
    speaker has no neighbours (or nobody spoke yet), the first participant opens.
    """

    name = "neighbours"

    def select(self, scenario: Scenario, step: int) -> list[str]:
        last = scenario.last_speaker
        if last is None:
            return [scenario.participants[0]]
        graph = scenario.graph
        succ = graph.successors(last) if graph.is_directed() else graph.neighbors(last)
        order = scenario.order
        candidates = sorted((n for n in succ if n in order), key=order.__getitem__)
        if not candidates:
            return [scenario.participants[0]]
        return [candidates[int(scenario.rng.integers(len(candidates)))]]


class Simultaneous(SchedulePolicy):
    """Everyone acts on the same tick, seeing the log as it stood before the tick."""

    name = "simultaneous"

    def select(self, scenario: Scenario, step: int) -> list[str]:
        return list(scenario.participants)


POLICIES: dict[str, type[SchedulePolicy]] = {
    p.name: p for p in (RoundRobin, RandomSpeaker, GraphNeighbours, Simultaneous)
}


def make_policy(name: str, **options: object) -> SchedulePolicy:
    """Build the schedule policy called ``name`` with its options."""
    try:
        cls = POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(POLICIES))
        raise ValueError(f"schedule.name: unknown policy {name!r} (known: {known})") from None
    try:
        return cls(**options)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ValueError(f"schedule: bad options for {name!r}: {exc}") from None


def policy_from_config(cfg: Mapping[str, Any]) -> SchedulePolicy:
    """Build a policy from a ``schedule`` config block.

    The schema carries every policy's options; only those the chosen policy takes are
    passed on (``allow_repeat`` means nothing to round-robin).
    """
    opts = dict(cfg)
    name = str(opts.pop("name", "round_robin"))
    cls = POLICIES.get(name)
    if cls is not None:
        accepted = inspect.signature(cls).parameters
        opts = {k: v for k, v in opts.items() if k in accepted}
    return make_policy(name, **opts)
