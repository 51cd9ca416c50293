"""A toy third-party scenario: each persona in turn says one line about a topic."""

from dataclasses import dataclass

from simlab.agents import PersonaAgent
from simlab.backends.base import ChatRequest, Message
from simlab.personas.model import Persona
from simlab.registry import ScenarioSpec
from simlab.scenario import Scenario
from simlab.scenario_config import ScenarioConfig, at_least


@dataclass
class ToyConfig(ScenarioConfig):
    """Everything the scenario can be told, with its defaults: the one home of both."""

    name: str = "toy"
    n_agents: int = 2  # personas drawn from the population
    rounds: int = 2  # turns per persona
    topic: str = "the weather"
    max_tokens: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()  # checks max_tokens, temperature, top_p
        at_least("n_agents", self.n_agents, 1)
        at_least("rounds", self.rounds, 1)


class ToyScenario(Scenario):
    """Personas take turns saying one line about a topic."""

    name = "toy"
    config_class = ToyConfig
    config: ToyConfig

    def setup(self, population: list[Persona]) -> None:
        if len(population) < self.config.n_agents:
            raise ValueError(f"population: the toy scenario needs "
                             f"{self.config.n_agents} personas, got {len(population)}")
        picks = self.rng.choice(len(population), size=self.config.n_agents, replace=False)
        agents = [self.add_agent(population[int(i)], "speaker") for i in picks]
        keys = [a.key for a in agents]
        self.graph.add_edges_from((a, b) for a in keys for b in keys if a < b)
        self.narrate(f"Everyone is talking about {self.config.topic}.")

    def system_prompt(self, agent: PersonaAgent) -> str:
        return f"You are {agent.name}. Say one short sentence about {self.config.topic}."

    def request_for(self, agent: PersonaAgent, messages: tuple[Message, ...],
                    seed: int) -> ChatRequest:
        return ChatRequest(messages=messages, seed=seed, tag=agent.key,
                           max_tokens=self.config.max_tokens)

    def check_termination(self) -> str | None:
        done = self.turns >= self.config.rounds * len(self.participants)
        return "rounds_done" if done else None


# a scenario may choose its memory default; ``memory=<policy>`` on the command line wins
SPEC = ScenarioSpec("toy", ToyScenario, ToyConfig, memory={"policy": "summary"})
