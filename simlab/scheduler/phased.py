"""Phased population scenarios: each engine step is one phase, asked as one batch.

Population scenarios such as the economy and opinion scenarios run a fixed plan of
phases (work periods, elections, planning; posting days, survey waves). Each phase's
actors are asked together, so a period is one simultaneous batch however many agents
take part. :class:`PhasedScenario` brings that schedule (:class:`PhasePolicy`, which asks
the scenario who acts in the current phase) through ``Scenario.own_schedule``, so
``engine.schedule`` does not apply to it.
"""

from __future__ import annotations

import functools
import json
from abc import abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from simlab.actions import PendingEvent
from simlab.backends.base import ChatResponse
from simlab.backends.structured import read_structured
from simlab.events import ENV, NARRATION
from simlab.scenario import Scenario
from simlab.scheduler.policies import SchedulePolicy


@dataclass(frozen=True, slots=True)
class Phase:
    """One engine step of a phased scenario."""

    kind: str  # e.g. "work", "vote", "plan", "post", "survey"
    tick: int  # the scenario period it belongs to (0-based)
    period: int  # tax year or survey wave (0-based)


class PhasePolicy(SchedulePolicy):
    """Everyone the current phase asks, as one batch."""

    name = "phases"

    def select(self, scenario: Scenario, step: int) -> list[str]:
        return scenario.phase_actors(step)  # type: ignore[attr-defined]


class PhasedScenario(Scenario):
    """A scenario whose engine steps follow a plan of phases (see module docstring)."""

    def own_schedule(self) -> SchedulePolicy:
        return PhasePolicy()

    @abstractmethod
    def phase_actors(self, step: int) -> list[str]:
        """Agent keys asked in engine step ``step`` (one batch)."""


def narration(audience: tuple[str, ...], text: str) -> PendingEvent:
    """An environment announcement to ``audience`` (results, elections, survey calls)."""
    return PendingEvent(ENV, audience, NARRATION, text)


def structured(response: ChatResponse) -> Any:
    """The reply's structured value: the backend's ``parsed``, else the first JSON object
    in its text (backends without schema support), else None."""
    return read_structured(response, search=True)


def compact(data: Any) -> str:
    """JSON text of a structured action for ``Event.data``.

    Flat dicts of hashable values (hours, votes, survey answers: a handful of distinct
    actions across a population) are memoised; anything else is encoded afresh.
    """
    if isinstance(data, dict):
        try:
            return _compact_items(tuple(sorted(data.items())))
        except TypeError:  # unhashable values (lists) or unsortable keys
            pass
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=4096)
def _compact_items(items: tuple[tuple[str, Any], ...]) -> str:
    return json.dumps(dict(items), ensure_ascii=False, separators=(",", ":"))


class AgentPolicy(StrEnum):
    """Who answers in a population scenario."""

    llm = "llm"  # every agent asks the backend
    rule = "rule"  # rule agents (best-response workers, DeGroot opinions) answer locally
