"""The tick engine: the five steps of a tick, as plain methods.

LangGraph (``simlab.scheduler.graph``) wires these into a ``StateGraph``; keeping the
logic here means the graph stays a thin, drawable description of control flow and the
steps are testable on their own. Concurrency lives in the backend: ``act`` sends the whole
tick as one batch, and re-asks of invalid replies as one more batch per round.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from simlab.actions import Interpretation, Outcome, PendingEvent
from simlab.backends.base import Backend, BackendUnusable, ChatRequest, ChatResponse, Message
from simlab.context import ProjectionContext, Projector, make_projector
from simlab.context.budget import Budget, budget_for
from simlab.context.memory import Memory, MemoryConfig, MemoryName
from simlab.context.policies import make_memory
from simlab.events import FAILURE, MEMORY, Event
from simlab.scheduler.policies import SchedulePolicy, policy_from_config
from simlab.scheduler.settings import EngineConfig
from simlab.usage import Usage

if TYPE_CHECKING:
    from simlab.agents import PersonaAgent
    from simlab.backends.embeddings import Embedder
    from simlab.research.interventions import Intervention
    from simlab.research.journal import Replay
    from simlab.scenario import Scenario

TurnCallback = Callable[[list[Event]], None]
#: ``checkpoint(engine, tick)``: called between ticks, every ``checkpoint_every`` ticks.
CheckpointCallback = Callable[["TickEngine", int], None]


@dataclass(slots=True)
class _Ask:
    """One agent's request in flight, with what its earlier attempts cost."""

    key: str
    messages: tuple[Message, ...]
    request: ChatRequest
    usage: Usage = field(default_factory=Usage)
    fitted: bool = False  # its messages went through the memory policy once


class TickEngine:
    """Runs a scenario's ticks against a backend.

    The engine owns what is the same for every scenario: its settings (re-asks, failure
    policy, step cap), the schedule (unless the scenario brings its own) and the
    projector that turns the event log into each agent's view.
    """

    def __init__(
        self,
        scenario: Scenario,
        backend: Backend,
        *,
        settings: EngineConfig | None = None,
        projection: str = "egocentric",
        schedule: SchedulePolicy | None = None,
        on_events: TurnCallback | None = None,
        memory: MemoryConfig | None = None,
        checkpoint: CheckpointCallback | None = None,
        embedder: Embedder | None = None,
        interventions: Sequence[Intervention] = (),
        replay: Replay | None = None,
    ) -> None:
        """``schedule``, a policy object, replaces ``settings.schedule``; a scenario's
        ``own_schedule`` wins over both. ``memory`` fits each request to the backend's
        context window (default: ``window``). ``checkpoint`` is called after every
        ``settings.checkpoint_every``-th tick that leaves no failure streak open.
        ``embedder`` scores relevance for ``retrieval`` memory (``memory.embedding``).
        ``interventions`` are applied at the start of their tick; ``replay`` (a fork's)
        answers the calls before its tick from the parent's journal. Every call is
        journaled in ``scenario.calls``."""
        from simlab.research.journal import JournaledBackend, ReplayBackend

        self.scenario = scenario
        self.backend = backend
        self.replaying: ReplayBackend | None = None
        if replay is not None:
            backend = self.replaying = ReplayBackend(backend, replay, lambda: self.step,
                                                     skip=len(scenario.calls))
        #: what every call goes through (the scenario's judges too): the journal, over
        #: a fork's replay, over ``backend``
        self.caller: Backend = JournaledBackend(backend, scenario.calls, lambda: self.step)
        self.interventions = tuple(interventions)
        self.settings = settings = settings if settings is not None else EngineConfig()
        self.max_steps = settings.max_steps
        self.on_events = on_events
        self.checkpoint = checkpoint
        self.embedder = embedder
        self.consecutive_failures = 0
        self.memory_config = memory if memory is not None else MemoryConfig()
        self._memories: dict[MemoryName, Memory] = {}
        self.step = 0
        self.policy: SchedulePolicy = (
            scenario.own_schedule() or schedule or policy_from_config(
                {"name": str(settings.schedule.name),
                 "allow_repeat": settings.schedule.allow_repeat}))
        self.projector: Projector = make_projector(projection, self._context())
        scenario.backend = self.caller

    def _context(self) -> ProjectionContext:
        sc = self.scenario
        return ProjectionContext(
            system_prompts={k: sc.system_prompt(a) for k, a in sc.by_key.items()},
            names={k: a.name for k, a in sc.by_key.items()},
            participants=tuple(sc.participants))

    def refresh_agents(self) -> None:
        """After interventions: system prompts, names and participants as the scenario
        now has them."""
        self.projector.refresh(self._context())

    # -- schedule
    def schedule(self, step: int) -> list[str]:
        self.step = step
        if self.interventions:
            from simlab.research.apply import apply_all, due

            now = due(self.interventions, self.scenario, step)
            if now:
                apply_all(self, now, step)
        actors = self.policy.select(self.scenario, step)
        unknown = [a for a in actors if a not in self.scenario.by_key]
        if unknown:
            raise ValueError(f"schedule returned unknown agents {unknown}")
        return actors

    # -- project
    def project(self, actors: list[str]) -> dict[str, tuple[Message, ...]]:
        return {key: self.projector.view(key, self.scenario.log) for key in actors}

    # -- act
    def _request(self, agent: PersonaAgent, messages: tuple[Message, ...],
                 seed: int) -> ChatRequest:
        """The scenario's request, with whose call it is (episode/agent) for a pool."""
        request = self.scenario.request_for(agent, messages, seed)
        if request.affinity:
            return request
        return replace(request, affinity=f"{self.scenario.episode_id}/{agent.key}")

    def act(self, actors: list[str], views: dict[str, tuple[Message, ...]]) -> list[Outcome]:
        sc = self.scenario
        asks = []
        for key in actors:
            seed = sc.next_seed()
            asks.append(_Ask(key, views[key], self._request(sc.by_key[key], views[key], seed)))
        results: dict[str, tuple[_Ask, Interpretation, ChatResponse | None]] = {}
        pending = asks
        max_reasks = self.settings.max_reasks
        for round_ in range(max_reasks + 1):
            responses = self._generate(pending)
            retry = []
            for ask, resp in zip(pending, responses, strict=True):
                ask.usage += resp.usage
                agent = sc.by_key[ask.key]
                # A structured reply that came back but failed its schema is the model's
                # mistake, not the transport's: re-ask it with the validation error.
                invalid = (not resp.ok and ask.request.json_schema is not None
                           and bool(resp.text) and not resp.transient)
                if resp.ok:
                    interp = sc.interpret(agent, resp)
                elif invalid:
                    interp = Interpretation(False, error=f"invalid structured reply: {resp.error}")
                else:
                    interp = Interpretation(False, error=f"backend error: {resp.error}")
                results[ask.key] = (ask, interp, resp)
                if not interp.ok and (resp.ok or invalid) and round_ < max_reasks:
                    msgs = sc.reask_messages(agent, ask.messages, interp.error)
                    ask.request = self._request(agent, msgs, sc.next_seed())
                    retry.append(ask)
            pending = retry
            if not pending:
                break
        outcomes = []
        for key in actors:
            ask, interp, resp = results[key]
            outcomes.append(Outcome(
                agent=sc.by_key[key], interpretation=interp, response=resp,
                seed=ask.request.seed or 0, usage=ask.usage,
            ))
        return outcomes

    def _generate(self, pending: list[_Ask]) -> list[ChatResponse]:
        """Responses for ``pending`` in order: rule-driven agents answer locally
        (``Scenario.local_response``), the rest go to the backend as one batch."""
        sc = self.scenario
        local = [sc.local_response(sc.by_key[a.key], a.request) for a in pending]
        self._prepare([a for a, r in zip(pending, local, strict=True)
                       if r is None and not a.fitted])
        for ask, reply in zip(pending, local, strict=True):
            if reply is None:
                self._fit(ask)
        remote = [a.request for a, r in zip(pending, local, strict=True) if r is None]
        responses = self.caller.generate(remote) if remote else []
        if len(responses) != len(remote):
            raise RuntimeError(
                f"backend {self.backend.name} returned {len(responses)} responses "
                f"for {len(remote)} requests"
            )
        fatal = next((r for r in responses if r.fatal), None)
        if fatal is not None:  # no later call can succeed: stop, do not record failures
            raise BackendUnusable(fatal.error or "the backend refused the request")
        it = iter(responses)
        return [r if r is not None else next(it) for r in local]

    def _budget(self, ask: _Ask) -> Budget | None:
        margin = self.memory_config.margin + self.backend.prompt_extra(ask.request)
        return budget_for(self.backend.context_window, ask.request.max_tokens, margin,
                          agent=ask.key, step=self.step)

    def _prepare(self, asks: list[_Ask]) -> None:
        """What memory policies must ask before fitting views (summaries), as one
        batch; each reply is recorded as a ``memory`` event, its agent the audience."""
        if self.backend.context_window is None:
            return
        sc = self.scenario
        needs = []
        for ask in asks:
            budget = self._budget(ask)
            assert budget is not None
            memory = self.memory_for(sc.by_key[ask.key].role)
            for request in memory.prepare(ask.key, self.step, ask.request.messages, budget,
                                          sc.next_seed):
                needs.append((ask.key, memory, request))
        if not needs:
            return
        for (key, memory, request), resp in zip(
                needs, self.caller.generate([r for *_, r in needs]), strict=True):
            note = memory.absorb(key, self.step, request, resp)
            if note is not None:
                sc.log.append(step=self.step, speaker=key, audience=(key,), kind=MEMORY,
                              content=note.content,
                              data=json.dumps({"memory": memory.name, **note.data}),
                              backend=self.backend.name, model=resp.model,
                              request_seed=request.seed or 0, finish_reason=resp.finish_reason,
                              **resp.usage.columns())

    def _fit(self, ask: _Ask) -> None:
        """Fit ``ask`` to the backend's window with the agent's memory policy: its view
        the first time, a re-ask's messages (statelessly) after that."""
        budget = self._budget(ask)
        if budget is None:
            return
        agent = self.scenario.by_key[ask.key]
        memory = self.memory_for(agent.role)
        fit = memory.refit if ask.fitted else memory.fit
        messages = fit(ask.key, self.step, ask.request.messages, budget)
        ask.fitted = True
        if messages is not ask.request.messages:
            ask.messages = messages
            ask.request = replace(ask.request, messages=messages)

    def fitted(self, request: ChatRequest) -> ChatRequest:
        """``request`` (an agent's: ``tag`` is its key) fitted to the window by that
        agent's memory policy, as the engine fits its own (used by interviews)."""
        ask = _Ask(request.tag, request.messages, request)
        self._fit(ask)
        return ask.request

    def memory_for(self, role: str) -> Memory:
        """The memory policy of agents with ``role`` (one instance per policy)."""
        name = self.memory_config.policy_for(role)
        if name not in self._memories:
            memory = make_memory(name, self.memory_config, self.backend)
            memory.bind(self.projector, lambda: self.scenario.log, self.embedder)
            self._memories[name] = memory
        return self._memories[name]

    # -- resolve
    def resolve(self, step: int, outcomes: list[Outcome]) -> list[PendingEvent]:
        return self.scenario.resolve(step, outcomes)

    # -- record
    def record(self, step: int, pending: list[PendingEvent]) -> tuple[bool, str]:
        sc = self.scenario
        backend = self.backend.name
        new: list[Event] = []
        for p in pending:
            call = dict(p.call)
            if call:
                call.setdefault("backend", backend)
            new.append(sc.log.append(step=step, speaker=p.speaker, audience=p.audience,
                                     kind=p.kind, content=p.content, **call))
            agent = sc.by_key.get(p.speaker)
            if agent is None or not call:
                continue
            if p.kind == FAILURE:
                agent.failures += 1
                self.consecutive_failures += 1
            else:
                agent.turns += 1
                sc.turns += 1
                self.consecutive_failures = 0
                sc.last_speaker = p.speaker
        sc.steps_taken = step + 1
        if self.on_events is not None:
            self.on_events(new)
        reason = self._termination(step, new)
        if reason:
            sc.done, sc.termination_reason = True, reason
        every = self.settings.checkpoint_every
        if (not reason and self.checkpoint is not None and every and (step + 1) % every == 0
                and not self.consecutive_failures):
            self.checkpoint(self, step + 1)
        return bool(reason), reason

    def _termination(self, step: int, new: list[Event]) -> str:
        sc = self.scenario
        failures = [e for e in new if e.kind == FAILURE]
        if failures and self.settings.on_failure == "stop":
            return f"failure: {failures[0].content}"
        if self.consecutive_failures >= self.settings.max_consecutive_failures:
            return "too_many_failures"
        reason = sc.check_termination()
        if reason:
            return reason
        if step + 1 >= self.max_steps:
            return "max_steps"
        return ""

    def tick(self, step: int) -> tuple[bool, str]:
        """One whole tick without LangGraph (used by ``Scenario.step``)."""
        actors = self.schedule(step)
        outcomes = self.act(actors, self.project(actors))
        return self.record(step, self.resolve(step, outcomes))
