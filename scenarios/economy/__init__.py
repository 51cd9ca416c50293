"""Labour & taxation after the LLM Economist: workers choose hours, a planner sets taxes."""

from scenarios.economy.config import EconomyConfig
from scenarios.economy.scenario import EconomyScenario
from simlab.registry import ScenarioSpec

SPEC = ScenarioSpec(
    "economy", EconomyScenario, EconomyConfig,
    default_population="census",  # workers are census people (ACS 2024 PUMS)
    # off: a phase in which every actor fails ends the episode instead ('all_failed')
    engine={"max_consecutive_failures": 1_000_000},
)

__all__ = ["SPEC", "EconomyConfig", "EconomyScenario"]
