"""Networked opinion dynamics with survey waves, after OASIS and AgentSociety.

Agents sit on a social graph (``scenarios.opinion.graphs``). Every period ("day") each
agent reads what its graph neighbours posted — the egocentric projection shows it only
events whose audience includes it, and a post's audience is the poster's neighbours —
then writes a short post and reports its stance on the topic on a Likert scale, as one
structured action; all agents act in one batch. Every ``survey_every`` days everyone
answers a fixed questionnaire (``scenarios.opinion.survey``), privately. Metrics per day
(``scenarios.opinion.metrics``): mean stance by group, polarisation, assortativity.

``agent_policy=rule`` replaces the model with DeGroot averaging over the stances in the
posts an agent perceived — the same visibility as a model agent's — for tests and
baselines.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from scenarios.opinion.config import OpinionConfig
from scenarios.opinion.graphs import build_graph
from scenarios.opinion.metrics import degroot, tick_metrics
from scenarios.opinion.report import summarize_opinion
from scenarios.opinion.survey import (
    likert_labels,
    parse_questions,
    questionnaire_text,
    read_answers,
    rule_answers,
    survey_schema,
)
from simlab.actions import Interpretation, Outcome, PendingEvent
from simlab.agents import PersonaAgent
from simlab.backends.base import ChatRequest, ChatResponse, Message
from simlab.events import UTTERANCE
from simlab.personas.model import Persona
from simlab.research.conditions import last_row
from simlab.scenario import Scenario
from simlab.scheduler.archetypes import Archetypes, build_archetypes, cell_labels, persona_label
from simlab.scheduler.phased import Phase, PhasedScenario, compact, narration, structured
from simlab.text import persona_card

if TYPE_CHECKING:
    import polars as pl

    from simlab.store import RunTables

SURVEY = "survey"


class OpinionScenario(PhasedScenario):
    """Posts and stances on a social graph, with periodic survey waves."""

    name = "opinion"

    config_class = OpinionConfig
    append_only = ("rows",)  # appended once a tick, never changed after
    settable = ("topic", "self_weight", "post_max_chars", "temperature", "top_p", "max_tokens")
    intervention_kinds = Scenario.intervention_kinds | {"add_agent", "remove_agent"}
    indicator_names = ("n_reported", "n_with_stance", "mean_stance", "var_stance",
                       "bimodality", "share_extreme", "assortativity")
    config: OpinionConfig

    def __init__(self, config: OpinionConfig | None = None, **episode: Any) -> None:
        super().__init__(config, **episode)
        c = self.config
        self.n_agents, self.ticks, self.topic, self.scale = c.n_agents, c.ticks, c.topic, c.scale
        self.graph_kind, self.group_by, self.survey_every = str(c.graph), c.group_by, c.survey_every
        self.graph_params = {"degree": c.degree, "rewire_p": c.rewire_p, "p_in": c.p_in,
                             "p_out": c.p_out}
        self.questions = parse_questions(c.questions, c.topic) if c.survey_every else []
        self.agent_policy, self.self_weight = str(c.agent_policy), c.self_weight
        self.post_max_chars = c.post_max_chars
        self.use_archetypes, self.archetype_by = c.archetypes, list(c.archetype_by)
        self.sampling = c.sampling()
        self.stance: dict[str, int] = {}  # last valid report per agent
        self.belief: dict[str, int] = {}  # rule agents' private opinion
        self._audiences: dict[str, tuple[str, ...]] = {}
        self.phase_failed = False
        self.rows: dict[str, list[dict[str, Any]]] = {
            "ticks": [], "groups": [], "stances": [], SURVEY: []}

    # ------------------------------------------------------------------ setup
    def setup(self, population: list[Persona]) -> None:
        n = self.n_agents or len(population)
        if n > len(population) or n < 2:
            raise ValueError(f"population: the opinion scenario needs scenario.n_agents={n} "
                             f"personas (at least 2), got {len(population)}")
        picks = sorted(int(i) for i in self.rng.choice(len(population), size=n, replace=False))
        keys = [self.add_agent(population[i], "member").key for i in picks]
        self.groups = {k: persona_label(self.by_key[k].persona, self.group_by) for k in keys}
        g = build_graph(self.graph_kind, keys, self.groups, self.rng, **self.graph_params)
        self.graph.add_edges_from(g.edges)
        # the graph is fixed for the episode: each agent's audience is computed once
        self._audiences = {k: Scenario.audience_of(self, k) for k in keys}
        self._schemas = {"post": self._post_schema(),
                         SURVEY: survey_schema(self.questions) if self.questions else None}
        if self.agent_policy == "rule":
            for k in keys:
                own = self.by_key[k].persona.attributes.get("stance")
                ok = isinstance(own, int) and not isinstance(own, bool) and 1 <= own <= self.scale
                self.belief[k] = own if ok else int(self.rng.integers(1, self.scale + 1))
        self.arch: Archetypes | None = None
        if self.use_archetypes:
            labels = cell_labels({k: self.by_key[k].persona for k in keys}, self.archetype_by)
            self.arch = build_archetypes(labels, self.rng)
        self.actors = self.arch.representatives if self.arch else keys
        self.phases: list[Phase] = []
        for t in range(self.ticks):
            self.phases.append(Phase("post", t, t))
            if self.survey_every and (t + 1) % self.survey_every == 0:
                self.phases.append(Phase(SURVEY, t, (t + 1) // self.survey_every - 1))
        self.narrate(self._day(0), audience=self.actors)

    def _day(self, tick: int) -> str:
        return (f"Day {tick + 1}. Write your post about: {self.topic}. Where do you stand "
                f"({likert_labels(self.scale)})?")

    def phase_actors(self, step: int) -> list[str]:
        return list(self.actors)

    def audience_of(self, key: str) -> tuple[str, ...]:
        """A post's audience: the poster's graph neighbours (cached; the graph is fixed)."""
        cached = self._audiences.get(key)
        return cached if cached is not None else super().audience_of(key)

    def _phase(self) -> Phase:
        return self.phases[min(self.steps_taken, len(self.phases) - 1)]

    def _members(self, key: str) -> list[str]:
        return self.arch.cell_members(key) if self.arch else [key]

    # ---------------------------------------------------------- interventions
    def reconfigure(self, key: str) -> None:
        c = self.config
        self.topic, self.self_weight, self.post_max_chars = c.topic, c.self_weight, \
            c.post_max_chars
        self.sampling = c.sampling()
        self._schemas["post"] = self._post_schema()
        if key == "topic" and self.survey_every:  # the survey asks about the new topic
            self.questions = parse_questions(c.questions, c.topic)

    def persona_changed(self, key: str) -> None:
        self.groups[key] = persona_label(self.by_key[key].persona, self.group_by)

    def refuses(self, kind: str) -> str | None:
        if kind in ("add_agent", "remove_agent") and self.use_archetypes:
            return "agents cannot join or leave archetype cells (scenario.archetypes=true)"
        return None

    def admit(self, persona: Persona, role: str, connect: Sequence[str]) -> PersonaAgent:
        """A newcomer: linked to ``connect``, told today's prompt, acting from this tick."""
        agent = self.add_agent(persona, role or "member")
        key = agent.key
        self.groups[key] = persona_label(persona, self.group_by)
        self.graph.add_edges_from((key, other) for other in connect)
        if self.agent_policy == "rule":
            own = persona.attributes.get("stance")
            ok = isinstance(own, int) and not isinstance(own, bool) and 1 <= own <= self.scale
            self.belief[key] = own if ok else (self.scale + 1) // 2
        self.actors = [*self.actors, key]
        self.graph_changed()
        phase = self._phase()
        text = (questionnaire_text(phase.period + 1, self.questions) if phase.kind == SURVEY
                else self._day(phase.tick))
        self.narrate(text, audience=(key,), step=self.steps_taken)
        return agent

    def retire(self, key: str) -> None:
        self.actors = [k for k in self.actors if k != key]
        self.graph.remove_edges_from(list(self.graph.edges(key)))
        self.stance.pop(key, None)
        self.belief.pop(key, None)
        self.graph_changed()

    def graph_changed(self) -> None:
        self._audiences = {k: Scenario.audience_of(self, k) for k in self.participants}

    # --------------------------------------------------------------- prompts
    def system_prompt(self, agent: PersonaAgent) -> str:
        rules = (
            f"You are on a social network where people post about one topic: {self.topic}. "
            f"Each day you read the posts of the people you are connected to, then write "
            f"one short post of your own (one or two sentences) and say where you stand on "
            f"a scale from 1 to {self.scale} ({likert_labels(self.scale)}). Stay in "
            'character. Reply with JSON only, like {"stance": 4, "post": "your post"}.'
        )
        if self.arch and self.arch.is_representative(agent.key):
            n = len(self._members(agent.key))
            return (f"{rules}\n\nYou speak for a group of {n} similar people "
                    f"({self.arch.cell_of[agent.key]}); answer as a typical member would.")
        return f"{rules}\n\n{persona_card(agent.persona)}"

    def _post_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "stance": {"type": "integer", "enum": list(range(1, self.scale + 1))},
                "post": {"type": "string", "minLength": 1, "maxLength": self.post_max_chars},
            },
            "required": ["stance", "post"],
            "additionalProperties": False,
        }

    def request_for(
        self, agent: PersonaAgent, messages: tuple[Message, ...], seed: int
    ) -> ChatRequest:
        survey = self._phase().kind == SURVEY
        schema = self._schemas[SURVEY if survey else "post"]
        return ChatRequest(messages=messages, seed=seed, tag=agent.key, json_schema=schema,
                           **self.sampling)

    def local_response(self, agent: PersonaAgent, request: ChatRequest) -> ChatResponse | None:
        if self.agent_policy != "rule":
            return None
        key = agent.key
        if self._phase().kind == SURVEY:
            data: dict[str, Any] = rule_answers(self.belief[key], self.scale, self.questions)
        else:
            if self._phase().tick > 0:
                heard = self._heard(key)
                self.belief[key] = degroot(self.belief[key], heard, self.self_weight, self.scale)
            s = self.belief[key]
            data = {"stance": s, "post": f"On a scale of 1 to {self.scale}, I am at {s}."}
        return ChatResponse.of_data(data, "rule:degroot")

    def _heard(self, key: str) -> list[int]:
        """Latest stance of each other agent whose post ``key`` perceived (its log index)."""
        latest: dict[str, int] = {}
        for e in self.log.perceived(key)[0]:
            if e.kind == UTTERANCE and e.speaker != key and e.data and \
                    key in self._audiences.get(e.speaker, ()):  # still a neighbour
                latest[e.speaker] = int(json.loads(e.data)["stance"])
        return [latest[k] for k in sorted(latest, key=self.order.__getitem__)]

    def interpret(self, agent: PersonaAgent, response: ChatResponse) -> Interpretation:
        data = structured(response)
        if self._phase().kind == SURVEY:
            answers = read_answers(data, self.questions)
            if isinstance(answers, str):
                return Interpretation(False, error=f"invalid survey answers: {answers}")
            text = ", ".join(f"{k}={v}" for k, v in answers.items())
            return Interpretation(True, f"My survey answers: {text}.", answers)
        if not isinstance(data, dict):
            return Interpretation(False, error="expected a JSON object with stance and post")
        s, post = data.get("stance"), data.get("post")
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= self.scale:
            return Interpretation(False, error=f"stance must be an integer from 1 to "
                                               f"{self.scale}, got {s!r}")
        if not isinstance(post, str) or not post.strip():
            return Interpretation(False, error="post must be non-empty text")
        post = " ".join(post.split())[: self.post_max_chars]
        return Interpretation(True, post, {"stance": s, "post": post})

    # --------------------------------------------------------------- resolve
    def resolve(self, step: int, outcomes: list[Outcome]) -> list[PendingEvent]:
        phase = self.phases[step]
        # a phase of several actors that all failed means a dead backend: stop there
        self.phase_failed = len(outcomes) > 1 and not any(o.interpretation.ok for o in outcomes)
        survey = phase.kind == SURVEY
        events: list[PendingEvent] = []
        reported: set[str] = set()
        for o in outcomes:
            ev = self.event_for(o)
            events.append(ev)
            if not o.interpretation.ok:
                continue
            data = o.interpretation.data
            if survey:
                ev.kind, ev.audience = SURVEY, ()
            ev.call["data"] = compact(data)
            via = "rule" if o.response and o.response.model.startswith("rule:") else "model"
            for member in self._members(o.agent.key):
                if member != o.agent.key:
                    copy = compact({**data, "archetype": o.agent.key})
                    events.append(PendingEvent(
                        member, () if survey else self.audience_of(member), ev.kind,
                        ev.content, {"data": copy, "model": f"archetype:{o.agent.key}"}))
                how = via if member == o.agent.key else "archetype"
                if survey:
                    self.rows[SURVEY] += [
                        {"wave": phase.period, "tick": phase.tick, "agent_id": member,
                         "group": self.groups[member], "question_id": q, "response": v,
                         "how": how} for q, v in data.items()]
                else:
                    self.stance[member] = data["stance"]
                    if member in self.belief:
                        self.belief[member] = data["stance"]
                    reported.add(member)
        if not survey:
            self._record_tick(phase.tick, reported)
        nxt = self.phases[step + 1] if step + 1 < len(self.phases) else None
        if nxt is not None:
            text = (questionnaire_text(nxt.period + 1, self.questions) if nxt.kind == SURVEY
                    else self._day(nxt.tick))
            events.append(narration(tuple(self.actors), text))
        return events

    def _record_tick(self, tick: int, reported: set[str]) -> None:
        row, groups = tick_metrics(tick, self.stance, self.groups, self.graph, self.scale,
                                   len(reported))
        self.rows["ticks"].append(row)
        self.rows["groups"] += groups
        self.rows["stances"] += [
            {"tick": tick, "agent_id": k, "group": self.groups[k], "stance": self.stance.get(k),
             "reported": k in reported, "degree": len(self._audiences[k])}
            for k in self.participants]

    def indicators(self) -> dict[str, object]:
        return last_row(self.rows["ticks"], self.indicator_names)

    # ----------------------------------------------------------- termination
    def check_termination(self) -> str | None:
        if self.phase_failed:
            return "all_failed"
        return "completed" if self.steps_taken >= len(self.phases) else None

    def outcome(self) -> dict[str, Any]:
        last = self.rows["ticks"][-1] if self.rows["ticks"] else {}
        n = self.graph.number_of_nodes()
        return {
            "topic": self.topic, "graph": self.graph_kind, "group_by": self.group_by,
            "agent_policy": self.agent_policy, "archetypes": self.use_archetypes,
            "n_agents": n, "n_edges": self.graph.number_of_edges(),
            "mean_degree": 2 * self.graph.number_of_edges() / n if n else 0.0,
            "n_calls_per_period": len(self.actors),
            **{f"final_{k}": last.get(k) for k in ("mean_stance", "var_stance", "bimodality",
                                                   "assortativity")},
        }

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {name: rows for name, rows in self.rows.items() if rows}

    @classmethod
    def summarize(cls, run: RunTables) -> dict[str, pl.DataFrame]:
        return summarize_opinion(run)
