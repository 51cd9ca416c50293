"""Engine settings: how the tick engine drives an episode, whatever the scenario.

They are their own config group (``engine``) and reach only the engine, never a
scenario. A scenario that needs other defaults (an auction re-asks illegal bids twice)
says so in its :class:`~simlab.registry.ScenarioSpec`, which selects them with the
scenario; a user's ``engine.*`` override still wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from simlab.scenario_config import enum_value


class ScheduleName(StrEnum):
    round_robin = "round_robin"
    random = "random"
    neighbours = "neighbours"
    simultaneous = "simultaneous"


# "continue": record the failure and go on; "stop": end the episode with its reason.
# (Functional form because ``continue`` is a keyword.)
FailurePolicy = StrEnum("FailurePolicy", {"continue": "continue", "stop": "stop"})


#: Keys that were ``scenario.*`` before the engine settings became their own group: the
#: CLI names their new place, and stored runs with the old layout still resume.
MOVED_FROM_SCENARIO = ("max_steps", "max_reasks", "on_failure", "max_consecutive_failures",
                       "schedule")


@dataclass
class ScheduleConfig:
    """Who acts on a tick. Scenarios that schedule their own turns (the auctioneer, a
    phase plan) say so through ``Scenario.own_schedule``; this then does not apply."""

    name: ScheduleName = ScheduleName.round_robin
    allow_repeat: bool = False  # only for "random"


@dataclass
class EngineConfig:
    """The engine's limits and failure policy (see docs/reliability.md)."""

    max_steps: int = 200  # safety cap on ticks; scenarios end themselves sooner
    max_reasks: int = 1  # re-ask an unusable reply this many times, then record a failure
    on_failure: FailurePolicy = FailurePolicy["continue"]  # type: ignore[valid-type]
    # failures in a row (across agents) that end the episode ("too_many_failures")
    max_consecutive_failures: int = 3
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # write the episode's state every K ticks (RUN/checkpoints/), so a killed run resumes
    # there; 0 = never. 25: 7 % of the wall of a 1,000-rule-agent economy, the worst case
    # (no model calls); next to model calls it is noise (benchmarks/README.md)
    checkpoint_every: int = 25

    def __post_init__(self) -> None:
        self.on_failure = enum_value(FailurePolicy, self.on_failure, "engine.on_failure")
        if isinstance(self.schedule, dict):
            self.schedule = ScheduleConfig(**self.schedule)
        self.schedule.name = enum_value(ScheduleName, self.schedule.name, "engine.schedule.name")
        for key, low in (("max_steps", 1), ("max_reasks", 0), ("max_consecutive_failures", 1),
                         ("checkpoint_every", 0)):
            value = getattr(self, key)
            if value < low:
                raise ValueError(f"engine.{key}: must be >= {low}, got {value}")

