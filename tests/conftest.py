"""Shared fixtures: tiny persona sets and a minimal scenario, all offline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from simlab.agents import PersonaAgent
from simlab.personas.model import Persona
from simlab.scenario import Scenario
from simlab.scenario_config import ScenarioConfig

#: A structured-action schema shared by backend tests (bids in an auction).
AUCTION_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"enum": ["bid", "out"]},
        "amount": {"type": "integer", "minimum": 0},
    },
    "required": ["action"],
}


def make_personas(n: int, goals: tuple[str, ...] = ("find a better job",)) -> list[Persona]:
    names = ["Ana Diaz", "Ben Okafor", "Chloe Martin", "Dev Patel", "Eva Novak", "Femi Ade"]
    return [
        Persona(id=f"p{i}", name=names[i], age=25 + 5 * i, description=f"{names[i]} is a test.",
                occupation="teacher", goals=goals)
        for i in range(n)
    ]


@dataclass
class ToyConfig(ScenarioConfig):
    """The toy scenario's one setting: its edge list (None: complete graph)."""

    name: str = "toy"
    edges: list[tuple[int, int]] | None = None


class ToyScenario(Scenario):
    """All personas in order, on a given edge list (default: complete)."""

    name = "toy"
    config_class = ToyConfig
    config: ToyConfig

    def setup(self, population: list[Persona]) -> None:
        agents = [self.add_agent(p, "member") for p in population]
        keys = [a.key for a in agents]
        pairs = self.config.edges or [
            (i, j) for i in range(len(keys)) for j in range(i + 1, len(keys))]
        self.graph.add_edges_from((keys[i], keys[j]) for i, j in pairs)

    def system_prompt(self, agent: PersonaAgent) -> str:
        return f"You are {agent.name}."


@pytest.fixture
def personas() -> list[Persona]:
    return make_personas(3)


def compose(*overrides: str):
    """Compose the project's Hydra config offline, as the CLI would."""
    from simlab.cli.compose import compose as simlab_compose

    return simlab_compose(overrides)


_RELIABILITY = Path(__file__).resolve().parent / "reliability"
#: notebooks (run by nbmake) that run the embedded model; a conftest.py beside them
#: would shadow this one's ``from conftest import …`` in the tests
_EMBEDDED_NOTEBOOKS = frozenset({"research_loop.ipynb"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under ``tests/reliability/`` is the reliability suite (part of CI); the
    notebooks that run the embedded model are ``embedded``, so ``make test-fast`` leaves
    them out. (This hook sees every collected item, the notebooks' too.)"""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if _RELIABILITY in path.parents:
            item.add_marker(pytest.mark.reliability)
        if path.name in _EMBEDDED_NOTEBOOKS and path.parent.name == "notebooks":
            item.add_marker(pytest.mark.embedded)
