"""The opinion scenario's config: the one home of its defaults and their checks.

Networked opinion dynamics and survey waves. Every day each agent reads its graph
neighbours' posts, posts, and reports a Likert stance (one batch).

    simlab scenario=opinion                                   # embedded model, 12 agents
    simlab scenario=opinion scenario.graph=sbm scenario.agent_policy=rule backend=mock
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from scenarios.opinion.graphs import GRAPHS
from scenarios.opinion.survey import DEFAULT_QUESTIONS, parse_questions
from simlab.scenario_config import ScenarioConfig, check, choice
from simlab.scheduler.phased import AgentPolicy


class NetworkKind(StrEnum):
    small_world = "small_world"
    scale_free = "scale_free"
    sbm = "sbm"


DEFAULT_TOPIC = "the federal minimum wage should be raised to $20 an hour"


@dataclass
class OpinionConfig(ScenarioConfig):
    """Posts and stances on a social graph, with periodic survey waves."""

    name: str = "opinion"
    n_agents: int | None = 12  # drawn from the population without replacement (None = all)
    ticks: int = 3  # days
    topic: str = DEFAULT_TOPIC
    scale: int = 7  # Likert 5 or 7
    # small_world | scale_free | sbm (blocks = demographic groups)
    graph: NetworkKind = NetworkKind.small_world
    degree: int = 4  # small_world: ring neighbours; scale_free: mean degree
    rewire_p: float = 0.1  # small_world rewiring probability
    p_in: float = 0.5  # sbm: tie probability within a group
    p_out: float = 0.05  # sbm: tie probability across groups
    # age_band | gender | occupation | location | any persona attribute
    group_by: str = "age_band"
    survey_every: int = 2  # a survey wave after every W days (0 = none)
    # id, text ({topic} is filled in) and scale (5 or 7) of each question
    questions: list[dict[str, Any]] = field(
        default_factory=lambda: [dict(q) for q in DEFAULT_QUESTIONS])
    agent_policy: AgentPolicy = AgentPolicy.llm  # llm | rule (DeGroot averaging)
    self_weight: float = 0.5  # rule agents: weight on their own stance
    post_max_chars: int = 160
    archetypes: bool = False  # AgentTorch-style: one call per cell, broadcast to its members
    archetype_by: list[str] = field(default_factory=lambda: ["age_band", "gender"])
    max_tokens: int = 80
    temperature: float = 0.8
    top_p: float = 0.95

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.scale in (5, 7), "scale", "5 or 7", self.scale)
        check(self.ticks >= 1, "ticks", ">= 1", self.ticks)
        check(self.graph in GRAPHS, "graph", f"one of {GRAPHS}", self.graph)
        check(self.survey_every >= 0, "survey_every", ">= 0 (0 = no surveys)",
              self.survey_every)
        check(self.agent_policy in ("llm", "rule"), "agent_policy", "'llm' or 'rule'",
              self.agent_policy)
        check(0 <= self.self_weight <= 1, "self_weight", "a weight in [0, 1]", self.self_weight)
        check(self.post_max_chars >= 20, "post_max_chars", ">= 20", self.post_max_chars)
        check(self.n_agents is None or self.n_agents >= 2, "n_agents", ">= 2 (or null)",
              self.n_agents)
        check(bool(str(self.topic).strip()), "topic", "non-empty text", self.topic)
        if self.degree < 1:
            raise ValueError(f"scenario.degree: must be >= 1, got {self.degree}")
        for key in ("rewire_p", "p_in", "p_out"):
            p = getattr(self, key)
            if not 0 <= p <= 1:
                raise ValueError(f"scenario.{key}: a probability in [0, 1], got {p}")
        if self.survey_every and not parse_questions(self.questions, self.topic):
            raise ValueError("scenario.questions: survey_every > 0 needs at least one question")
        self.graph = choice(NetworkKind, self.graph, "graph")
        self.agent_policy = choice(AgentPolicy, self.agent_policy, "agent_policy")
