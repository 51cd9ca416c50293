"""Networked opinion dynamics and survey waves on census personas."""

from scenarios.opinion.config import OpinionConfig
from scenarios.opinion.scenario import OpinionScenario
from simlab.registry import ScenarioSpec

SPEC = ScenarioSpec(
    "opinion", OpinionScenario, OpinionConfig,
    default_population="census",  # agents are census people (ACS 2024 PUMS)
    # off: a phase in which every actor fails ends the episode instead ('all_failed')
    engine={"max_consecutive_failures": 1_000_000},
)

__all__ = ["SPEC", "OpinionConfig", "OpinionScenario"]
