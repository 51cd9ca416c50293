"""The scenario base class: a ``mesa.Model`` that runs one episode.

A scenario owns its agents, the networkx interaction graph (who can perceive whom), the
episode's event log, its rules (``interpret`` and ``resolve``) and its termination rule.
It owns the episode's one seeded RNG, as Mesa models do; agents, schedule policies and
per-call seeds all borrow it. The engine (``simlab.scheduler``) drives it tick by tick.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

import mesa
import networkx as nx

from simlab.actions import Interpretation, Outcome, PendingEvent
from simlab.agents import PersonaAgent
from simlab.backends.base import Backend, ChatRequest, ChatResponse, Message
from simlab.events import ENV, FAILURE, NARRATION, UTTERANCE, EventLog
from simlab.personas.model import Persona, one_line
from simlab.scenario_config import ScenarioConfig

if TYPE_CHECKING:
    import polars as pl

    from simlab.context.memory import MemoryConfig
    from simlab.scheduler.policies import SchedulePolicy
    from simlab.scheduler.settings import EngineConfig
    from simlab.store import RunTables

SEED_BOUND = 2**31 - 1


class Scenario(mesa.Model):
    """Base class of every scenario; subclasses fill in the hooks below.

    Built as Mesa models are: ``__init__`` (``super().__init__()`` first, then the
    subclass's own state from ``self.config``), then :meth:`setup` adds the agents.
    :meth:`create` does both. Engine settings (re-asks, failure policy, step cap) and
    the projection never reach a scenario; the engine owns them.
    """

    name: ClassVar[str] = "scenario"
    #: The config dataclass this scenario takes (``config=None`` means its defaults).
    config_class: ClassVar[type[ScenarioConfig]] = ScenarioConfig
    #: Attributes that only ever grow at the end (a list, or a dict of lists) and whose
    #: items are never changed once appended, such as per-tick tables. A checkpoint
    #: stores only what each gained since the previous one, like the event log
    #: (:mod:`simlab.scheduler.snapshot`), instead of pickling them whole each time.
    append_only: ClassVar[tuple[str, ...]] = ()
    #: Config fields a ``set`` intervention may change mid-episode (``simlab.research.
    #: interventions``); :meth:`reconfigure` re-derives what depends on them. Any other
    #: key is refused before the run starts.
    settable: ClassVar[tuple[str, ...]] = ()
    #: Intervention kinds this scenario supports; ``add_agent`` and ``remove_agent``
    #: need :meth:`admit` and :meth:`retire`.
    intervention_kinds: ClassVar[frozenset[str]] = frozenset(
        {"broadcast", "set", "persona", "add_edges", "remove_edges"})
    #: The numbers an intervention's ``when:`` condition may test
    #: (:mod:`simlab.research.conditions`); :meth:`indicators` gives their values.
    indicator_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ScenarioConfig | None = None, *, episode_id: str = "ep00000",
                 episode_index: int = 0, seed: int = 0) -> None:
        super().__init__(rng=seed)
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, "
                            f"got {type(self.config).__name__}")
        self.episode_id = episode_id
        self.episode_index = episode_index
        self.seed = seed
        self.log = EventLog(episode_id)
        #: every backend call of the episode, in order (``simlab.research.journal``)
        self.calls: list[tuple[Any, ...]] = []
        self.graph: nx.Graph = nx.Graph()
        self.by_key: dict[str, PersonaAgent] = {}
        self.participants: list[str] = []
        self.retired: set[str] = set()  # removed by an intervention: no longer acting
        self.order: dict[str, int] = {}  # agent key -> position in participants
        self.last_speaker: str | None = None
        self.backend: Backend | None = None  # set by the engine; for judges, not agents
        self.steps_taken = 0
        self.turns = 0
        self.done = False
        self.termination_reason = ""

    @classmethod
    def create(cls, config: ScenarioConfig | None = None, population: Sequence[Persona] = (),
               **episode: Any) -> Self:
        """A scenario with its agents: construct, then :meth:`setup` ``population``."""
        scenario = cls(config, **episode)
        scenario.setup(list(population))
        if not scenario.participants:
            raise ValueError(f"{cls.__name__}.setup() added no agents")
        return scenario

    # ----------------------------------------------------------------- hooks
    @abstractmethod
    def setup(self, population: list[Persona]) -> None:
        """Draw agents from ``population`` with :meth:`add_agent`, build the graph,
        and record any opening narration."""

    @abstractmethod
    def system_prompt(self, agent: PersonaAgent) -> str:
        """Persona and scenario instructions for ``agent``'s system message."""

    def own_schedule(self) -> SchedulePolicy | None:
        """The schedule this scenario brings, or None to use ``engine.schedule``.

        Scenarios whose rules decide who acts (an auctioneer, a phase plan) return their
        policy here; the configured schedule then does not apply to them.
        """
        return None

    def request_for(
        self, agent: PersonaAgent, messages: tuple[Message, ...], seed: int
    ) -> ChatRequest:
        """The chat request for ``agent`` given its projected view."""
        return ChatRequest(messages=messages, seed=seed, tag=agent.key)

    def local_response(self, agent: PersonaAgent, request: ChatRequest) -> ChatResponse | None:
        """A reply computed without the backend, or None to ask the model.

        Rule-driven agents (truthful bidders, formula planners) answer here; their
        replies then flow through ``interpret`` and ``resolve`` exactly like a model's,
        so mixed populations of rule and LLM agents share one code path.
        """
        return None

    def interpret(self, agent: PersonaAgent, response: ChatResponse) -> Interpretation:
        """Validate or repair a reply; invalid ones are re-asked with ``error``."""
        text = response.text.strip()
        return Interpretation(True, text) if text else Interpretation(False, error="empty reply")

    def reask_messages(
        self, agent: PersonaAgent, messages: tuple[Message, ...], error: str
    ) -> tuple[Message, ...]:
        """Messages for a re-ask after an invalid reply: by default the same view.

        Structured (JSON) replies get the validation error appended, so the model can
        correct itself; a fresh per-call seed is drawn either way.
        """
        if error.startswith("invalid structured reply"):
            note = f"Your last reply was not valid ({error}). Reply again with JSON only."
            return (*messages, Message("user", note))
        return messages

    def resolve(self, step: int, outcomes: list[Outcome]) -> list[PendingEvent]:
        """Apply the scenario's rules to this tick's outcomes; return events to record."""
        return [self.event_for(o) for o in outcomes]

    def check_termination(self) -> str | None:
        """A reason to end the episode now, or None to go on."""
        return None

    def outcome(self) -> dict[str, Any]:
        """Scenario-specific columns for the ``episodes`` row."""
        return {}

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Extra per-episode tables, by name (e.g. ``items`` sold in an auction or
        ``ticks`` of aggregate metrics); stored as ``<name>.parquet`` beside the events
        and loaded into ``RunTables.tables``. Derived from the run, never a second log."""
        return {}

    @classmethod
    def summarize(cls, run: RunTables) -> dict[str, pl.DataFrame]:
        """Scenario metrics over a stored run, by table name, for ``simlab analyze``.

        Reads only the store (``run.episodes``, ``run.tables`` …), so analysis never
        needs the live model; e.g. an auction's revenue and efficiency per format beside
        the textbook benchmark. One row per episode or per (episode, tick) is typical.
        """
        return {}

    # ---------------------------------------------------------- interventions
    def config_with(self, key: str, value: Any) -> ScenarioConfig:
        """This scenario's config with ``key`` set to ``value``, type-checked and checked
        by the dataclass (``ValueError`` naming the key otherwise)."""
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        try:
            merged = OmegaConf.merge(OmegaConf.structured(self.config), {key: value})
            return OmegaConf.to_object(merged)  # type: ignore[return-value]
        except OmegaConfBaseException as exc:
            raise ValueError(f"scenario.{key}: {value!r} does not fit "
                             f"({str(exc).splitlines()[0]})") from None

    def reconfigure(self, key: str) -> None:
        """Re-derive state from ``self.config`` after a ``set`` intervention changed
        ``key``, one of :attr:`settable` (system prompts are rebuilt by the engine)."""

    def persona_changed(self, key: str) -> None:
        """Agent ``key``'s persona was changed (``persona``): re-derive what depends on
        it (its prompt is rebuilt by the engine)."""

    def refuses(self, kind: str) -> str | None:
        """Why this episode's settings rule out interventions of ``kind``, or None."""
        return None

    def admit(self, persona: Persona, role: str, connect: Sequence[str]) -> PersonaAgent:
        """Add ``persona`` mid-episode, linked to ``connect`` (``add_agent``)."""
        raise ValueError(f"the {self.name} scenario cannot add agents (it does not list "
                         f"add_agent in intervention_kinds)")

    def retire(self, key: str) -> None:
        """Take agent ``key`` out of the episode from now on (``remove_agent``)."""
        raise ValueError(f"the {self.name} scenario cannot remove agents (it does not "
                         f"list remove_agent in intervention_kinds)")

    def graph_changed(self) -> None:
        """The graph's edges changed (an intervention): drop what was derived from them."""

    def indicators(self) -> dict[str, object]:
        """The :attr:`indicator_names` as the ticks so far left them, for ``when:``
        conditions; derived from state, so as deterministic as the run."""
        return {}

    # --------------------------------------------------------------- helpers
    def add_agent(self, persona: Persona, role: str) -> PersonaAgent:
        """Create a :class:`PersonaAgent`, register it and add it to the graph."""
        try:
            one_line(role)
        except ValueError as exc:
            raise ValueError(f"scenario role {role!r} of persona {persona.id!r}: {exc}") from None
        key = persona.id
        n = 2
        while key in self.by_key or key == ENV:
            key, n = f"{persona.id}-{n}", n + 1
        agent = PersonaAgent(self, persona, role, key)
        self.by_key[key] = agent
        self.order[key] = len(self.participants)
        self.participants.append(key)
        self.graph.add_node(key)
        return agent

    def audience_of(self, key: str) -> tuple[str, ...]:
        """Who perceives what ``key`` does: its graph neighbours (successors if directed)."""
        if key == ENV:
            return tuple(self.participants)
        nbrs = self.graph.successors(key) if self.graph.is_directed() else self.graph.neighbors(key)
        order = self.order
        return tuple(sorted((n for n in nbrs if n in order), key=order.__getitem__))

    def narrate(self, text: str, audience: Sequence[str] | None = None, step: int = 0) -> None:
        """Record an environment announcement (to everyone unless ``audience`` is given)."""
        aud = tuple(self.participants) if audience is None else tuple(audience)
        self.log.append(step=step, speaker=ENV, audience=aud, kind=NARRATION, content=text)

    def event_for(self, o: Outcome) -> PendingEvent:
        """The default event of an outcome: an utterance to the graph, or a failure."""
        call = {
            **o.usage.columns(),
            "finish_reason": o.response.finish_reason if o.response else "",
            "model": o.response.model if o.response else "",
            "request_seed": o.seed,
        }
        # What the model actually wrote, where the event does not record it as is (a
        # repaired reply, or one that failed): repair must not hide role confusion from
        # analysis. Scenarios that store a structured action in ``data`` overwrite it.
        raw = o.response.text if o.response else ""
        if o.interpretation.ok:
            if raw and raw != o.interpretation.content:
                call["data"] = raw_reply_data(raw)
            return PendingEvent(o.agent.key, self.audience_of(o.agent.key), UTTERANCE,
                                o.interpretation.content, call)
        if raw:
            call["data"] = raw_reply_data(raw)
        return PendingEvent(o.agent.key, (), FAILURE, o.interpretation.error, call)

    def next_seed(self) -> int:
        """A per-call seed derived from the episode RNG (so replays are identical)."""
        return int(self.rng.integers(SEED_BOUND))

    def attach(self, backend: Backend, engine: EngineConfig | None = None,
               projection: str = "egocentric", memory: MemoryConfig | None = None) -> None:
        """Bind a backend so the model can be driven Mesa-style with :meth:`step`."""
        from simlab.scheduler.engine import TickEngine

        self._engine = TickEngine(self, backend, settings=engine, projection=projection,
                                  memory=memory)

    def step(self) -> None:
        """One tick (schedule, project, act, resolve, record), as in any Mesa model."""
        engine = getattr(self, "_engine", None)
        if engine is None:
            raise RuntimeError("call scenario.attach(backend) before step()")
        if not self.done:
            engine.tick(self.steps - 1)  # Mesa has already counted this step
        self.running = not self.done


def raw_reply_data(text: str) -> str:
    """``Event.data`` for a model reply kept verbatim: ``{"raw": text}``."""
    return json.dumps({"raw": text}, ensure_ascii=False)
