"""Labour & taxation, after the LLM Economist: workers choose hours, a planner sets taxes.

Workers are personas (census-sampled ones carry their income; see
``scenarios.economy.workers`` for the skill rule). Every period all workers choose their
weekly hours in {0, 10, …, 100} as a structured action, in one batch; incomes are taxed
by the brackets in force, revenue is rebated equally and utilities computed
(``scenarios.economy.tax``). Every ``tax_year`` periods the planner in office sets new
rates (``scenarios.economy.planner``); with ``voting`` the workers first elect it among
the ``candidates`` by plurality. Engine steps follow a fixed phase plan::

    work 0 … work K-1 | [vote] plan work K … work 2K-1 | [vote] plan …

What each agent sees is in the event log: workers their own results (narration to
themselves) and the planner's announcements; the planner a text summary of the year.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from scenarios.economy.config import EconomyConfig
from scenarios.economy.planner import (
    OBJECTIVES,
    PLATFORMS,
    TITLES,
    elect,
    plan_schema,
    read_plan,
    rule_plan,
    year_summary,
)
from scenarios.economy.report import (
    INDICATORS,
    labour_rows,
    schedule_rows,
    summarize_economy,
    tick_means,
    tick_row,
)
from scenarios.economy.tax import (
    HOURS,
    Settlement,
    TaxSchedule,
    UtilityParams,
    best_response,
    preset_schedule,
    settle,
)
from scenarios.economy.workers import (
    HOURS_SCHEMA,
    SkillRule,
    result_line,
    retrospective_vote,
    vote_schema,
    wage_line,
    worker_rules,
    worker_skill,
)
from simlab.actions import Interpretation, Outcome, PendingEvent
from simlab.agents import PersonaAgent
from simlab.backends.base import ChatRequest, ChatResponse, Message
from simlab.personas.model import Persona
from simlab.research.conditions import last_row
from simlab.scheduler.archetypes import Archetypes, build_archetypes, cell_labels, quantile_bands
from simlab.scheduler.phased import Phase, PhasedScenario, compact, narration, structured
from simlab.text import persona_card

if TYPE_CHECKING:
    import polars as pl

    from simlab.store import RunTables

class EconomyScenario(PhasedScenario):
    """Workers choose hours under a tax schedule that a planner adjusts every tax year."""

    name = "economy"

    config_class = EconomyConfig
    append_only = ("rows", "history")  # appended once a tick, never changed after
    config: EconomyConfig
    settable = ("tax_schedule", "flat_rate", "brackets", "rates", "temperature", "top_p",
                "max_tokens")
    indicator_names = INDICATORS

    def reconfigure(self, key: str) -> None:
        """A new schedule setting replaces the schedule in force (planners adjust from
        it); any other setting leaves the planners' rates as they are."""
        c = self.config
        if key in ("tax_schedule", "flat_rate", "brackets", "rates"):
            self.tax_schedule = str(c.tax_schedule)
            self.schedule = preset_schedule(self.tax_schedule, flat_rate=c.flat_rate,
                                            brackets=c.brackets, rates=c.rates)
        self.sampling = c.sampling()

    def __init__(self, config: EconomyConfig | None = None, **episode: Any) -> None:
        super().__init__(config, **episode)
        c = self.config
        self.n_workers, self.ticks, self.tax_year = c.n_workers, c.ticks, c.tax_year
        self.planner, self.worker_policy = str(c.planner), str(c.worker_policy)
        self.tax_schedule = str(c.tax_schedule)
        self.schedule = preset_schedule(self.tax_schedule, flat_rate=c.flat_rate,
                                        brackets=c.brackets, rates=c.rates)
        self.skill_rule = SkillRule(c.weeks_per_year, c.default_hours, c.min_skill,
                                    c.max_skill, c.fallback_wage_median, c.fallback_wage_sigma)
        self.params = UtilityParams(c.eta, c.frisch, c.psi, c.min_consumption)
        self.income_floor, self.objective = c.inverse_income_floor, str(c.planner_objective)
        self.max_change, self.saez = c.planner_max_change, (c.saez_elasticity, c.saez_min_count)
        self.voting = c.voting
        self.kinds = [str(k) for k in c.candidates] if c.voting else [self.planner]
        self.use_archetypes, self.archetype_by = c.archetypes, list(c.archetype_by)
        self.skill_bands = c.skill_bands
        self.sampling = c.sampling()
        self.planner_max_tokens = c.planner_max_tokens
        self.history: list[Settlement] = []
        self.phase_failed = False
        self.rows: dict[str, list[dict[str, Any]]] = {
            "ticks": [], "schedule": [], "labour": [], "elections": [], "votes": []}

    # ------------------------------------------------------------------ setup
    def setup(self, population: list[Persona]) -> None:
        n = self.n_workers or len(population)
        if n > len(population) or n < 2:
            raise ValueError(f"population: the economy needs scenario.n_workers={n} personas "
                             f"(at least 2), got {len(population)}")
        picks = sorted(int(i) for i in self.rng.choice(len(population), size=n, replace=False))
        self.workers = [self.add_agent(population[i], "worker").key for i in picks]
        self.index = {k: i for i, k in enumerate(self.workers)}
        drawn = [worker_skill(self.by_key[k].persona, self.skill_rule, self.rng)
                 for k in self.workers]
        self.skill = np.array([s for s, _ in drawn])
        self.skill_source = [src for _, src in drawn]
        self.planner_key: dict[str, str] = {}
        for kind in self.kinds:
            p = Persona(id=f"planner_{kind}", name=TITLES[kind], age=45, occupation="tax planner",
                        description=f"The {TITLES[kind]} {PLATFORMS[kind]}.")
            agent = self.add_agent(p, "planner")
            agent.state["kind"] = kind
            self.planner_key[kind] = agent.key
        self.incumbent = self.planner
        self.arch: Archetypes | None = None
        if self.use_archetypes:
            bands = quantile_bands(dict(zip(self.workers, self.skill, strict=True)),
                                   self.skill_bands)
            extra = {k: {"skill_band": b} for k, b in bands.items()}
            labels = cell_labels({k: self.by_key[k].persona for k in self.workers},
                                 self.archetype_by, extra)
            self.arch = build_archetypes(labels, self.rng)
        self.actors = self.arch.representatives if self.arch else list(self.workers)
        self.hours = np.full(n, self.skill_rule.default_hours)
        self.last_rebate = self._settle(self.hours).rebate
        self.phases: list[Phase] = []
        for t in range(self.ticks):
            if t and t % self.tax_year == 0:
                if self.voting:
                    self.phases.append(Phase("vote", t, t // self.tax_year))
                self.phases.append(Phase("plan", t, t // self.tax_year))
            self.phases.append(Phase("work", t, t // self.tax_year))
        self.narrate(f"Tax year 1 begins. Marginal income-tax rates: {self.schedule.describe()}.",
                     audience=self.actors)

    def _settle(self, hours: np.ndarray) -> Settlement:
        return settle(self.skill, hours, self.schedule, self.params,
                      self.skill_rule.weeks_per_year)

    def _members(self, key: str) -> list[str]:
        return self.arch.cell_members(key) if self.arch else [key]

    def _skill_of(self, key: str) -> float:
        return float(np.median([self.skill[self.index[m]] for m in self._members(key)]))

    def phase_actors(self, step: int) -> list[str]:
        phase = self.phases[step]
        return [self.planner_key[self.incumbent]] if phase.kind == "plan" else list(self.actors)

    def _phase(self) -> Phase:
        return self.phases[min(self.steps_taken, len(self.phases) - 1)]

    # --------------------------------------------------------------- prompts
    def system_prompt(self, agent: PersonaAgent) -> str:
        if agent.role == "planner":
            return (
                f"You are the tax planner of a small economy of {len(self.workers)} workers. "
                f"Every tax year you set the marginal income-tax rate of each of the "
                f"{self.schedule.n} brackets; all tax revenue is shared equally among the "
                f"workers, who choose their working hours in response. Your goal is to "
                f"raise social welfare: {OBJECTIVES[self.objective]}. Reply with JSON only: "
                '{"changes": [one integer per bracket, the change of its rate in percentage '
                f'points, from -{self.max_change} to {self.max_change}], '
                '"reason": "one short sentence"}.'
            )
        rules = worker_rules(len(self.workers))
        wage = wage_line(self._skill_of(agent.key), self.skill_rule.weeks_per_year)
        if self.arch and self.arch.is_representative(agent.key):
            cell = self.arch.cell_of[agent.key]
            n = len(self._members(agent.key))
            return (f"{rules}\n\nYou choose for a group of {n} similar workers ({cell}); "
                    f"choose what suits a typical member.\n{wage}")
        return f"{rules}\n\n{persona_card(agent.persona)}\n{wage}"

    def _titles(self) -> list[str]:
        return [TITLES[k] for k in self.kinds]

    def request_for(
        self, agent: PersonaAgent, messages: tuple[Message, ...], seed: int
    ) -> ChatRequest:
        phase = self._phase()
        sampling = dict(self.sampling)
        if phase.kind == "plan":
            schema = plan_schema(self.schedule.n, self.max_change)
            sampling["max_tokens"] = self.planner_max_tokens
        else:
            schema = vote_schema(self._titles()) if phase.kind == "vote" else HOURS_SCHEMA
        return ChatRequest(messages=messages, seed=seed, tag=agent.key, json_schema=schema,
                           **sampling)

    def local_response(self, agent: PersonaAgent, request: ChatRequest) -> ChatResponse | None:
        phase = self._phase()
        if phase.kind == "plan":
            kind = agent.state["kind"]
            if kind == "llm":
                return None
            data = rule_plan(kind, self.schedule, self._last_year(phase), eta=self.params.eta,
                             elasticity=self.saez[0], min_count=self.saez[1])
            return ChatResponse.of_data(data, f"rule:{kind}")
        if self.worker_policy != "rule":
            return None
        if phase.kind == "work":
            h = best_response(self._skill_of(agent.key), self.schedule, self.last_rebate,
                              self.params, self.skill_rule.weeks_per_year)
            return ChatResponse.of_data({"hours": h}, "rule:best_response")
        mine = [self._cell_mean(s.utility, agent.key) for s in self.history]
        titles = self._titles()
        own = TITLES[self.incumbent]
        vote = retrospective_vote(mine, own, [t for t in titles if t != own], self.rng)
        return ChatResponse.of_data({"vote": vote}, "rule:retrospective")

    def _cell_mean(self, values: np.ndarray, key: str) -> float:
        return float(np.mean([values[self.index[m]] for m in self._members(key)]))

    def _last_year(self, phase: Phase) -> list[Settlement]:
        return self.history[max(phase.tick - self.tax_year, 0):phase.tick]

    def interpret(self, agent: PersonaAgent, response: ChatResponse) -> Interpretation:
        data, phase = structured(response), self._phase()
        if phase.kind == "plan":
            new = read_plan(data, self.schedule, self.max_change)
            if isinstance(new, str):
                return Interpretation(False, error=f"invalid plan: {new}")
            return Interpretation(True, f"Tax rates for tax year {phase.period + 1}: "
                                        f"{new.describe()}.",
                                  {"reply": data, "rates": list(new.rates),
                                   "thresholds": list(new.thresholds)})
        field = "vote" if phase.kind == "vote" else "hours"
        value = data.get(field) if isinstance(data, dict) else None
        if phase.kind == "vote":
            if value not in self._titles():
                return Interpretation(False, error=f"vote must be one of {self._titles()}, "
                                                   f"got {value!r}")
            return Interpretation(True, f"I vote for the {value}.", {"vote": value})
        if isinstance(value, bool) or not isinstance(value, int | float) or value not in HOURS:
            return Interpretation(False, error=f"hours must be one of {list(HOURS)}, "
                                               f"got {value!r}")
        return Interpretation(True, f"I will work {int(value)} hours a week.",
                              {"hours": int(value)})

    # --------------------------------------------------------------- resolve
    def resolve(self, step: int, outcomes: list[Outcome]) -> list[PendingEvent]:
        phase = self.phases[step]
        # a phase of several actors that all failed means a dead backend: stop there
        self.phase_failed = len(outcomes) > 1 and not any(o.interpretation.ok for o in outcomes)
        handler = {"work": self._resolve_work, "vote": self._resolve_vote,
                   "plan": self._resolve_plan}[phase.kind]
        events = handler(step, phase, outcomes)
        nxt = self.phases[step + 1] if step + 1 < len(self.phases) else None
        if nxt is not None and nxt.kind == "plan":
            summary = year_summary(f"Tax year {nxt.period}", self._last_year(nxt),
                                   self.schedule, self.income_floor)
            events.append(narration((self.planner_key[self.incumbent],),
                                     f"{summary}\nSet the rates for tax year {nxt.period + 1}."))
        return events

    def _acted(self, o: Outcome, kind: str, key: str) -> list[PendingEvent]:
        """The actor's event, plus copies for the members of its cell (archetypes)."""
        ev = self.event_for(o)
        if not o.interpretation.ok:
            return [ev]
        ev.kind, ev.call["data"] = kind, compact(o.interpretation.data)
        out = [ev]
        for member in self._members(key):
            if member != key:
                data = compact({**o.interpretation.data, "archetype": key})
                out.append(PendingEvent(member, (), kind, ev.content,
                                        {"data": data, "model": f"archetype:{key}"}))
        return out

    def _resolve_work(self, step: int, phase: Phase, outcomes: list[Outcome]) -> list[PendingEvent]:
        hours, events = self.hours.copy(), []
        how = ["failed"] * len(self.workers)
        for o in outcomes:
            events += self._acted(o, "labour", o.agent.key)
            if not o.interpretation.ok:
                continue
            for member in self._members(o.agent.key):
                hours[self.index[member]] = o.interpretation.data["hours"]
                how[self.index[member]] = ("archetype" if member != o.agent.key else
                                           "rule" if (o.response and o.response.model
                                                      .startswith("rule:")) else "model")
        s = self._settle(hours)
        self.history.append(s)
        self.hours, self.last_rebate = hours, s.rebate
        self.rows["ticks"].append(tick_row(phase.tick, phase.period, self.incumbent, s,
                                           self.schedule, how.count("failed"), self.income_floor))
        self.rows["schedule"] += schedule_rows(phase.tick, self.schedule)
        self.rows["labour"] += labour_rows(phase.tick, self.workers, self.skill,
                                           self.skill_source, how, s)
        nxt = self.phases[step + 1] if step + 1 < len(self.phases) else None
        if nxt is None:
            return events
        ballot = ""
        if nxt.kind == "vote":
            lines = "; ".join(f"the {TITLES[k]}, who {PLATFORMS[k]}" for k in self.kinds)
            ballot = (f"\nTax year {nxt.period} is over. Elect the planner for tax year "
                      f"{nxt.period + 1}. Candidates: {lines}. The {TITLES[self.incumbent]} "
                      'is in office. Reply with JSON only, like {"vote": "'
                      f'{TITLES[self.kinds[0]]}"}}.')
        columns = (s.hours, s.pretax, s.tax, s.consumption)
        plain = [a.tolist() for a in columns]  # per-worker floats without numpy overhead
        for key in self.actors:
            members = self._members(key)
            if len(members) == 1:
                i = self.index[key]
                h, z, t, c = (col[i] for col in plain)
            else:
                idx = [self.index[m] for m in members]
                h, z, t, c = (float(a[idx].mean()) for a in columns)
            text = result_line(phase.tick + 1, h, z, t, s.rebate, c, len(members))
            events.append(narration((key,), text + ballot))
        return events

    def _resolve_vote(self, step: int, phase: Phase, outcomes: list[Outcome]) -> list[PendingEvent]:
        events, votes = [], []
        for o in outcomes:
            events += self._acted(o, "vote", o.agent.key)
            vote = o.interpretation.data["vote"] if o.interpretation.ok else None
            for member in self._members(o.agent.key):
                votes.append(vote)
                self.rows["votes"].append({"year": phase.period, "agent_id": member,
                                           "vote": vote})
        titles = self._titles()
        winner, counts, tie = elect(votes, titles, self.rng, TITLES[self.incumbent])
        self.incumbent = self.kinds[titles.index(winner)]
        self.rows["elections"].append({"year": phase.period, "tick": phase.tick,
                                       "winner": self.incumbent, "tie_broken": tie,
                                       "n_votes": sum(counts.values()),
                                       **{f"votes_{k}": counts[TITLES[k]] for k in self.kinds}})
        tally = ", ".join(f"{t} {counts[t]}" for t in titles)
        text = (f"Election result: the {winner} won ({tally}"
                f"{'; a tie broken by lot' if tie else ''}).")
        events.append(narration(tuple(self.actors), text))
        return events

    def _resolve_plan(self, step: int, phase: Phase, outcomes: list[Outcome]) -> list[PendingEvent]:
        o = outcomes[0]
        if not o.interpretation.ok:
            return [self.event_for(o), narration(
                tuple(self.actors), f"The planner made no change; the rates for tax year "
                                    f"{phase.period + 1} stay: {self.schedule.describe()}.")]
        data = o.interpretation.data
        self.schedule = TaxSchedule(tuple(data["thresholds"]), tuple(data["rates"]))
        ev = self.event_for(o)
        ev.kind, ev.audience = "policy", tuple(self.actors)
        ev.call["data"] = compact({**data, "planner": self.incumbent})
        return [ev]

    # ----------------------------------------------------------- termination
    def check_termination(self) -> str | None:
        if self.phase_failed:
            return "all_failed"
        return "completed" if self.steps_taken >= len(self.phases) else None

    def outcome(self) -> dict[str, Any]:
        return {
            "planner": self.planner, "final_planner": self.incumbent,
            "worker_policy": self.worker_policy, "tax_schedule": self.tax_schedule,
            "voting": self.voting, "archetypes": self.use_archetypes,
            "n_workers": len(self.workers), "n_calls_per_period": len(self.actors),
            **tick_means(self.rows["ticks"]), "final_rates": list(self.schedule.rates),
        }

    def indicators(self) -> dict[str, object]:
        return last_row(self.rows["ticks"], self.indicator_names)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {name: rows for name, rows in self.rows.items() if rows}

    @classmethod
    def summarize(cls, run: RunTables) -> dict[str, pl.DataFrame]:
        return summarize_economy(run)
