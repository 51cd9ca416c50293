"""Persona dialogues, after SPASM: client–responder pairs and N-party group talk.

*Pair* mode: a client persona brings a situation drawn from its own goals to a responder
persona who plays a role (coach, clerk, friend …) drawn from config. *Group* mode: three
or more personas talk about a topic, the next speaker chosen by the schedule policy over
the interaction graph. Episodes end on a natural close (rules or a backend judge, over a
sliding window) or at ``max_turns``; the reason is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from scenarios.dialogue.closing import JUDGE_PROMPT_VERSION, judge_closed, rule_closed
from scenarios.dialogue.config import DialogueConfig
from simlab.actions import Interpretation
from simlab.agents import PersonaAgent
from simlab.backends.base import ChatRequest, ChatResponse, Message
from simlab.context.base import speaker_label
from simlab.events import ENV, UTTERANCE
from simlab.personas.model import Persona
from simlab.scenario import Scenario
from simlab.text import clean_reply, persona_card


class DialogueScenario(Scenario):
    """Client–responder (``mode='pair'``) or group (``mode='group'``) conversation."""

    name = "dialogue"
    config_class = DialogueConfig
    config: DialogueConfig

    settable = ("min_turns", "max_turns", "temperature", "top_p", "max_tokens")

    def reconfigure(self, key: str) -> None:
        c = self.config
        self.min_turns, self.max_turns = c.min_turns, c.max_turns
        self.sampling = c.sampling()

    def __init__(self, config: DialogueConfig | None = None, **episode: Any) -> None:
        super().__init__(config, **episode)
        c = self.config
        self.mode, self.group_size = str(c.mode), c.group_size
        self.roles, self.topics, self.graph_kind = list(c.roles), list(c.topics), str(c.graph)
        self.min_turns, self.max_turns = c.min_turns, c.max_turns
        self.closing_window, self.termination = c.closing_window, str(c.termination)
        self.sampling = c.sampling()
        self.role: Mapping[str, str] = {}
        self.topic = ""
        self.situation = ""

    # ------------------------------------------------------------------ setup
    def setup(self, population: list[Persona]) -> None:
        need = 2 if self.mode == "pair" else self.group_size
        if len(population) < need:
            raise ValueError(
                f"population: {self.mode} dialogue needs {need} personas, got {len(population)}"
            )
        picks = self.rng.choice(len(population), size=need, replace=False)
        people = [population[int(i)] for i in picks]
        if self.mode == "pair":
            self._setup_pair(*people)
        else:
            self._setup_group(people)

    def _setup_pair(self, client_p: Persona, responder_p: Persona) -> None:
        self.role = self.roles[int(self.rng.integers(len(self.roles)))]
        goals = client_p.goals or ("talk something through",)
        self.situation = goals[int(self.rng.integers(len(goals)))]
        client = self.add_agent(client_p, "client")
        responder = self.add_agent(responder_p, str(self.role["name"]))
        self.graph.add_edge(client.key, responder.key)
        self.narrate(f"{client.name} comes to talk with {responder.name}, "
                     f"{_a(self.role['name'])}.")

    def _setup_group(self, people: list[Persona]) -> None:
        self.topic = self.topics[int(self.rng.integers(len(self.topics)))]
        agents = [self.add_agent(p, "participant") for p in people]
        keys = [a.key for a in agents]
        if self.graph_kind == "complete":
            self.graph.add_edges_from(nx.complete_graph(keys).edges)
        elif self.graph_kind == "ring":
            self.graph.add_edges_from(nx.cycle_graph(keys).edges)
        else:
            self.graph.add_edges_from((keys[0], k) for k in keys[1:])
        names = ", ".join(a.name for a in agents)
        self.narrate(f"{names} are chatting about {self.topic}.")

    # --------------------------------------------------------------- prompts
    def system_prompt(self, agent: PersonaAgent) -> str:
        card = persona_card(agent.persona)
        others = [self.by_key[k].name for k in self.participants if k != agent.key]
        rules = (f"Speak only as {agent.name}, in the first person. Reply with one short "
                 "message of one to three sentences. Do not write lines for anyone else.")
        if self.mode == "group":
            scene = f"You are chatting with {', '.join(others)} about {self.topic}."
        elif agent.role == "client":
            scene = (f"You are talking with {others[0]}, {_a(self.role['name'])}. "
                     f"You came because you want to {self.situation}. "
                     "When your concern is settled, thank them and say goodbye.")
        else:
            scene = (f"In this conversation you are {_a(self.role['name'])}. "
                     f"{self.role.get('instructions', '')} You are talking with {others[0]}, "
                     "who came to see you.").replace("  ", " ")
        return f"{card}\n\n{scene}\n{rules}"

    def request_for(
        self, agent: PersonaAgent, messages: tuple[Message, ...], seed: int
    ) -> ChatRequest:
        return ChatRequest(messages=messages, seed=seed, tag=agent.key, **self.sampling)

    def interpret(self, agent: PersonaAgent, response: ChatResponse) -> Interpretation:
        others = [self.by_key[k].name for k in self.participants if k != agent.key]
        text = clean_reply(response.text, agent.name, others,
                           truncated=response.finish_reason == "length")
        if not text:
            return Interpretation(False, error=f"empty reply after repair: {response.text!r}")
        return Interpretation(True, text)

    # ----------------------------------------------------------- termination
    def _utterances(self) -> list[tuple[str, str]]:
        return [(e.speaker, e.content) for e in self.log if e.kind == UTTERANCE]

    def check_termination(self) -> str | None:
        said = self._utterances()
        if len(said) >= self.min_turns and self._closed(said[-self.closing_window:]):
            return "natural_close"
        return "max_turns" if len(said) >= self.max_turns else None

    def _closed(self, window: list[tuple[str, str]]) -> bool:
        """Natural close over the sliding window, by rules or by asking the backend."""
        if self.termination == "rules":
            return rule_closed([t for _, t in window], len(window))
        lines = [f"{speaker_label(self.by_key[s].name)}: {t}" for s, t in window]
        assert self.backend is not None, "judge termination needs the engine's backend"
        verdict, raw = judge_closed(self.backend, lines, self.next_seed())
        self.log.append(step=max(self.steps_taken - 1, 0), speaker=ENV, audience=(),
                        kind="judge", content=raw, data=JUDGE_PROMPT_VERSION)
        return bool(verdict)

    def outcome(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "responder_role": str(self.role.get("name", "")),
            "situation": self.situation,
            "topic": self.topic,
        }


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
