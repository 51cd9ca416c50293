"""The dialogue scenario's config: the one home of its defaults and their checks.

    simlab                                   # 3 client–responder dialogues (pair mode)
    simlab scenario=group_dialogue           # N-party talk, next speaker from the graph
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from simlab.scenario_config import ScenarioConfig, check, choice


class DialogueMode(StrEnum):
    pair = "pair"
    group = "group"


class Termination(StrEnum):
    rules = "rules"
    judge = "judge"


class GraphKind(StrEnum):
    complete = "complete"
    ring = "ring"
    star = "star"


def _roles() -> list[dict[str, str]]:
    return [
        {"name": "career coach", "instructions": "Help them think through their options. "
         "Ask one question at a time and suggest one concrete next step."},
        {"name": "bank clerk", "instructions": "Be polite and practical. Explain what you "
         "can and cannot do, and what they need to bring."},
        {"name": "old friend", "instructions": "Be warm and honest. Share a bit of your own "
         "life too, the way friends do."},
        {"name": "pharmacist", "instructions": "Be careful and clear. Ask about what they "
         "already take before you advise."},
        {"name": "landlord", "instructions": "Be businesslike but fair. You want the flat "
         "kept well and the rent paid on time."},
    ]


def _topics() -> list[str]:
    return [
        "whether the town should build a new park or a parking garage",
        "the best way to spend a free Saturday",
        "whether kids today have it easier than their parents did",
        "how to make the neighbourhood safer for cyclists",
    ]


@dataclass
class DialogueConfig(ScenarioConfig):
    """Client–responder persona dialogues (SPASM-style); ``mode=group`` for N-party talk."""

    name: str = "dialogue"
    mode: DialogueMode = DialogueMode.pair
    group_size: int = 3  # group mode: how many personas talk
    graph: GraphKind = GraphKind.complete  # group mode: who hears whom
    # pair mode: the responder plays one of these (name + instructions), drawn per episode
    roles: list[dict[str, str]] = field(default_factory=_roles)
    topics: list[str] = field(default_factory=_topics)  # group mode: one drawn per episode
    min_turns: int = 6
    max_turns: int = 10
    closing_window: int = 2  # natural close = every utterance in the window takes leave
    termination: Termination = Termination.rules  # rules | judge (asks the backend)
    max_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.95

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.mode in tuple(DialogueMode), "mode", "'pair' or 'group'", self.mode)
        check(self.termination in tuple(Termination), "termination", "'rules' or 'judge'",
              self.termination)
        graphs = tuple(g.value for g in GraphKind)
        check(self.graph in graphs, "graph", f"one of {graphs}", self.graph)
        self.mode = choice(DialogueMode, self.mode, "mode")
        self.termination = choice(Termination, self.termination, "termination")
        self.graph = choice(GraphKind, self.graph, "graph")
        if self.mode == "group" and self.group_size < 3:
            raise ValueError(f"scenario.group_size: group mode needs >= 3, got {self.group_size}")
        if not 1 <= self.min_turns <= self.max_turns:
            raise ValueError(
                f"scenario.min_turns/max_turns: need 1 <= min_turns <= max_turns, "
                f"got {self.min_turns}/{self.max_turns}")
        if self.mode == "pair" and not self.roles:
            raise ValueError("scenario.roles: pair mode needs at least one responder role")
        for i, r in enumerate(self.roles):
            if not isinstance(r, Mapping) or not r.get("name"):
                raise ValueError(f"scenario.roles[{i}]: each role needs a 'name' (got {r!r})")


@dataclass
class GroupDialogueConfig(DialogueConfig):
    """The N-party preset: three personas, the next speaker a graph neighbour."""

    mode: DialogueMode = DialogueMode.group
    max_turns: int = 12
    closing_window: int = 3
