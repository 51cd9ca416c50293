"""House auctions with persona bidders, after HARBOR: English, first-price, second-price.

A Mesa model on the scheduler graph. Houses (``scenarios/data/houses.yaml``) are sold one
after another to persona bidders with budgets and tastes (``personas/bidders.yaml``, or a
census population whose budgets follow from income). Each tick is one bidding round:

- *schedule*: the auctioneer asks every bidder still in the lot (English; the standing
  high bidder waits) or every bidder once (sealed);
- *act*: LLM bidders answer with structured JSON (``{"action": "bid", "amount": 412000}``
  or ``{"action": "out"}``); rule bidders (truthful, shading, random) answer locally;
- *interpret*: each action is checked against the rules (``auction_rules.check_bid``);
  an illegal one is re-asked with the reason, and when re-asks run out it is recorded as
  a ``failure`` event and counted as ``out``;
- *resolve*: the auctioneer, deterministic rule code, records each ``bid``/``out``, then
  announces the round, ``sale`` or ``unsold`` to everyone and opens the next lot.

Bidders see the auction through ECP: public announcements from the auctioneer, bids in
the room (English; sealed bids are seen only by their bidder), and private notes only they
see: their value estimate and budget, and optionally their own plan and profiles of their
rivals (``plan``/``profiling``). Per-lot results, every bid attempt and per-bidder
results are scenario tables; ``summarize`` sets the metrics beside textbook benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx

from scenarios.auction import prompts
from scenarios.auction.bidders import rule_action
from scenarios.auction.config import AuctionConfig
from scenarios.auction.items import Item, budget_of, draw_values, load_items, parse_items
from scenarios.auction.metrics import bidder_rows, episode_outcome, lot_row, summarize
from scenarios.auction.rules import (
    BID,
    ENGLISH,
    OUT,
    SEALED,
    Action,
    AuctionSchedule,
    Lot,
    bid_levels,
    check_bid,
    clear_sealed,
    english_round,
    parse_action,
    raw_action,
)
from simlab.actions import Interpretation, Outcome, PendingEvent
from simlab.agents import PersonaAgent
from simlab.backends.base import ChatRequest, ChatResponse, Message
from simlab.backends.structured import StructuredOutputError, decode_structured
from simlab.events import ENV, FAILURE, NARRATION, NOTE, UTTERANCE
from simlab.personas.model import Persona
from simlab.scenario import Scenario

if TYPE_CHECKING:
    import polars as pl

    from simlab.store import RunTables

SALE, UNSOLD = "sale", "unsold"  # auctioneer event kinds (bids: "bid"/"out")


class AuctionScenario(Scenario):
    """Sequential house auction in one of three formats (see module docstring)."""

    name = "auction"

    config_class = AuctionConfig
    config: AuctionConfig

    settable = ("min_increment", "max_rounds", "shade", "random_out_p", "temperature", "top_p",
                "max_tokens")

    def reconfigure(self, key: str) -> None:
        c = self.config
        self.min_increment, self.max_rounds = c.min_increment, c.max_rounds
        self.shade, self.random_out_p = c.shade, c.random_out_p
        self.sampling = c.sampling()

    def __init__(self, config: AuctionConfig | None = None, **episode: Any) -> None:
        super().__init__(config, **episode)
        c = self.config
        pool = parse_items(list(c.items), "scenario.items") if c.items else load_items(
            c.items_path)
        if c.n_items > len(pool):
            raise ValueError(f"scenario.n_items: {c.n_items} lots but only {len(pool)} items "
                             f"in {'scenario.items' if c.items else c.items_path or 'houses.yaml'}")
        self.format, self.pool, self.n_items, self.n_bidders = (
            str(c.format), pool, c.n_items, c.n_bidders)
        self.rule_types, self.shuffle = [str(r) for r in c.rule_bidders], c.shuffle
        self.min_increment, self.max_rounds = c.min_increment, c.max_rounds
        self.value_noise, self.taste_sd = c.value_noise, c.taste_sd
        self.budget_income_multiple, self.shade, self.random_out_p = (
            c.budget_income_multiple, c.shade, c.random_out_p)
        self.bid_schema, self.ladder_size = str(c.bid_schema), c.ladder_size
        self.flags = {"talk": c.talk, "plan": c.plan, "profiling": c.profiling}
        self.ask_dropped = c.ask_dropped
        self.sampling = c.sampling()
        self.items: list[Item] = []
        self.lot: Lot | None = None
        self.lot_rows: list[dict[str, Any]] = []
        self.bid_rows: list[dict[str, Any]] = []
        self._round_rows: dict[str, list[int]] = {}  # bidder -> this round's attempt rows
        self._lot_open: dict[str, Any] = {}  # snapshot at lot open, for benchmarks

    def own_schedule(self) -> AuctionSchedule:
        """The auctioneer decides who bids each round; ``engine.schedule`` does not apply."""
        return AuctionSchedule()

    # ------------------------------------------------------------------ setup
    def setup(self, population: list[Persona]) -> None:
        if len(population) < self.n_bidders:
            raise ValueError(f"population: the auction needs n_bidders={self.n_bidders} "
                             f"personas, got {len(population)}")
        if self.shuffle:
            people = [population[int(i)] for i in
                      self.rng.choice(len(population), size=self.n_bidders, replace=False)]
            self.items = [self.pool[int(i)] for i in
                          self.rng.choice(len(self.pool), size=self.n_items, replace=False)]
        else:
            people, self.items = population[: self.n_bidders], self.pool[: self.n_items]
        budgets = [budget_of(p, self.budget_income_multiple) for p in people]
        true, est = draw_values(self.items, people, self.rng, taste_sd=self.taste_sd,
                                value_noise=self.value_noise)
        for seat, (persona, budget) in enumerate(zip(people, budgets, strict=True)):
            kind = self.rule_types[seat] if seat < len(self.rule_types) else "llm"
            agent = self.add_agent(persona, f"{kind}_bidder")
            agent.state.update(
                type=kind, budget=budget, remaining=budget, spent=0, won=[], plan="", rivals="",
                true={it.id: int(true[seat, h]) for h, it in enumerate(self.items)},
                estimate={it.id: int(est[seat, h]) for h, it in enumerate(self.items)},
            )
        self.graph.add_edges_from(nx.complete_graph(self.participants).edges)
        self.narrate(prompts.welcome([self.by_key[k].name for k in self.participants],
                                     self.items))
        for p in self._open_lot(0):
            self.log.append(step=0, speaker=p.speaker, audience=p.audience, kind=p.kind,
                            content=p.content, **p.call)

    def _open_lot(self, index: int) -> list[PendingEvent]:
        """Start lot ``index``: public announcement plus each bidder's private briefing."""
        item = self.items[index]
        self.lot = Lot(item, index, item.increment or self.min_increment)
        self._lot_open = {
            k: {"estimate": a.state["estimate"][item.id], "true": a.state["true"][item.id],
                "budget": a.state["remaining"]}
            for k, a in self.by_key.items()
        }
        everyone = tuple(self.participants)
        out = [PendingEvent(ENV, everyone, NARRATION,
                            prompts.lot_announcement(self.lot, len(self.items), self.format),
                            {"data": json.dumps({"lot": index, "item": item.id}),
                             "backend": ""})]
        for key in self.participants:
            snap = self._lot_open[key]
            out.append(PendingEvent(ENV, (key,), NARRATION, prompts.private_briefing(
                self.by_key[key].name, item, snap["estimate"], snap["budget"])))
        return out

    # --------------------------------------------------------------- prompts
    def system_prompt(self, agent: PersonaAgent) -> str:
        return prompts.system_prompt(agent.persona, self.format,
                                     ladder=self.bid_schema == "ladder", flags=self.flags)

    def action_schema(self, agent: PersonaAgent) -> dict[str, Any]:
        """The JSON schema of ``agent``'s reply now (``ladder``: legal amounts only)."""
        assert self.lot is not None
        levels = None
        if self.bid_schema == "ladder":
            levels = bid_levels(self.lot, agent.state["remaining"], self.format,
                                self.ladder_size)
        return prompts.action_schema(levels, self.flags)

    def request_for(
        self, agent: PersonaAgent, messages: tuple[Message, ...], seed: int
    ) -> ChatRequest:
        return ChatRequest(messages=messages, seed=seed, tag=agent.key,
                           json_schema=self.action_schema(agent), **self.sampling)

    def reask_messages(
        self, agent: PersonaAgent, messages: tuple[Message, ...], error: str
    ) -> tuple[Message, ...]:
        if error.startswith("invalid structured reply"):  # never reached interpret
            self._attempt(agent, None, error, "schema")
        note = prompts.reask_note(error)
        if messages and messages[-1].role == "user":
            return (*messages[:-1], Message("user", f"{messages[-1].content}\n{note}"))
        return (*messages, Message("user", note))

    # ------------------------------------------------------------------- act
    def to_ask(self) -> list[str]:
        """Bidders to ask this round, in seat order."""
        lot = self.lot
        if lot is None:
            return []
        if self.format in SEALED:
            return list(self.participants)
        return [k for k in self.participants
                if k != lot.leader and (self.ask_dropped or k not in lot.dropped)]

    def local_response(self, agent: PersonaAgent, request: ChatRequest) -> ChatResponse | None:
        kind = agent.state["type"]
        if kind == "llm":
            return None
        lot = self.lot
        assert lot is not None
        if agent.key in lot.dropped:
            action: dict[str, Any] = {"action": OUT}
        else:
            action = rule_action(
                kind, self.format, value=agent.state["estimate"][lot.item.id],
                budget=agent.state["remaining"], min_bid=lot.min_bid,
                start_price=lot.item.start_price, increment=lot.increment,
                n_bidders=len(self.participants), rng=self.rng, shade=self.shade,
                out_p=self.random_out_p)
        return ChatResponse.of_data(action, f"rule:{kind}")

    def interpret(self, agent: PersonaAgent, response: ChatResponse) -> Interpretation:
        assert self.lot is not None
        try:
            action, error = parse_action(decode_structured(response))
        except StructuredOutputError as exc:
            action, error = None, f"malformed JSON: {exc}"
        kind = "parse"
        if action is not None:
            error = check_bid(action, bidder=agent.key, lot=self.lot,
                              budget=agent.state["remaining"], fmt=self.format)
            kind = "rule"
        self._attempt(agent, action, error, kind if error else "")
        if error:
            return Interpretation(False, error=error)
        assert action is not None
        return Interpretation(True, prompts.describe(action), data=action)

    def _attempt(self, agent: PersonaAgent, action: Action | None, error: str,
                 error_kind: str) -> None:
        """One row of the ``bids`` table per reply that reached the auctioneer."""
        lot = self.lot
        assert lot is not None
        snap = self._lot_open[agent.key]
        amount = action.amount if action is not None else None
        rows = self._round_rows.setdefault(agent.key, [])
        rows.append(len(self.bid_rows))
        self.bid_rows.append({
            "item_id": lot.item.id, "lot": lot.index, "round": lot.rounds + 1,
            "bidder": agent.key, "bidder_type": agent.state["type"], "attempt": len(rows),
            "action": action.kind if action is not None else None, "amount": amount,
            "valid": not error, "error": error, "error_kind": error_kind, "final": False,
            "min_bid": lot.min_bid, "estimate": snap["estimate"], "true_value": snap["true"],
            "budget": agent.state["remaining"],
            "over_value": amount is not None and amount > snap["estimate"],
            "over_budget": amount is not None and amount > agent.state["remaining"],
        })

    # --------------------------------------------------------------- resolve
    def resolve(self, step: int, outcomes: list[Outcome]) -> list[PendingEvent]:
        lot = self.lot
        assert lot is not None
        events: list[PendingEvent] = []
        moves: list[tuple[str, Action]] = []
        forced: list[str] = []
        for o in outcomes:
            key, agent = o.agent.key, o.agent
            call = self.event_for(o).call
            if agent.state["type"] != "llm":
                call["backend"] = "rule"
            if o.interpretation.ok:
                action: Action = o.interpretation.data
                events.extend(self._action_events(agent, action, call))
                moves.append((key, action))
            else:
                error = o.interpretation.error
                if error.startswith(("invalid structured reply", "backend error")):
                    self._attempt(agent, raw_action(o.response), error,
                                  "schema" if error.startswith("invalid") else "backend")
                events.append(PendingEvent(key, (), FAILURE, f"{error} (counted as out)", call))
                moves.append((key, Action(OUT)))
                forced.append(key)
            rows = self._round_rows.get(key)
            if rows:
                self.bid_rows[rows[-1]]["final"] = True
        self._round_rows = {}
        if self.format == ENGLISH:
            english_round(lot, moves, self.participants, self.max_rounds)
            names = {k: a.name for k, a in self.by_key.items()}
            events.append(self._env(prompts.round_news(lot, moves, forced, names)))
        else:
            bids = [(k, a.amount) for k, a in moves if a.kind == BID and a.amount is not None]
            clear_sealed(lot, bids, self.format)
            events.append(self._env(prompts.sealed_news(lot, len(bids))))
        if lot.closed:
            events.extend(self._close_lot(lot))
        return events

    def _action_events(self, agent: PersonaAgent, action: Action,
                       call: dict[str, Any]) -> list[PendingEvent]:
        """A remark (utterance to the room), the bid/out itself, and private notes."""
        room = self.audience_of(agent.key)
        # Sealed bids are seen only by their bidder; English bids by the whole room.
        seen_by = room if self.format == ENGLISH else ()
        out = []
        if action.say:
            out.append(PendingEvent(agent.key, room, UTTERANCE, action.say))
        data = json.dumps(action.as_dict(), ensure_ascii=False)
        out.append(PendingEvent(agent.key, seen_by, action.kind, prompts.describe(action),
                                {**call, "data": data}))
        if action.plan and action.plan != agent.state["plan"]:
            agent.state["plan"] = action.plan
            out.append(PendingEvent(agent.key, (), NOTE, f"My plan: {action.plan}"))
        if action.rivals and action.rivals != agent.state["rivals"]:
            agent.state["rivals"] = action.rivals
            out.append(PendingEvent(agent.key, (), NOTE, f"My read on my rivals: "
                                                         f"{action.rivals}"))
        return out

    def _close_lot(self, lot: Lot) -> list[PendingEvent]:
        item = lot.item
        types = {k: a.state["type"] for k, a in self.by_key.items()}
        self.lot_rows.append(lot_row(lot, self.format, self._lot_open, self.participants, types))
        if lot.sold:
            assert lot.leader is not None and lot.high_bid is not None
            winner = self.by_key[lot.leader]
            winner.state["remaining"] -= lot.high_bid
            winner.state["spent"] += lot.high_bid
            winner.state["won"].append(item.id)
            events = [self._env(f"Sold! {item.name} goes to {winner.name} for "
                                f"${lot.high_bid:,}.", SALE,
                                {"item": item.id, "winner": winner.key,
                                 "price": lot.high_bid, "closed": lot.closed})]
        else:
            events = [self._env(f"No bids: {item.name} is withdrawn unsold.", UNSOLD,
                                {"item": item.id, "closed": lot.closed})]
        if lot.index + 1 < len(self.items):
            events.extend(self._open_lot(lot.index + 1))
        else:
            self.lot = None
            sold = [r for r in self.lot_rows if r["sold"]]
            events.append(self._env(
                f"The auction is over: {len(sold)} of {len(self.items)} houses sold for "
                f"${sum(r['price'] for r in sold):,} in total."))
        return events

    def _env(self, text: str, kind: str = NARRATION,
             data: Mapping[str, Any] | None = None) -> PendingEvent:
        call = {"data": json.dumps(dict(data)), "backend": ""} if data else {}
        return PendingEvent(ENV, tuple(self.participants), kind, text, call)

    # ----------------------------------------------------------- termination
    def check_termination(self) -> str | None:
        return "auction_complete" if self.lot is None else None

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {"items": list(self.lot_rows), "bids": list(self.bid_rows),
                "bidders": bidder_rows(self.by_key, self.participants, self.lot_rows,
                                       self.bid_rows)}

    def outcome(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "n_items": len(self.items),
            "n_bidders": len(self.participants),
            "n_llm_bidders": sum(a.state["type"] == "llm" for a in self.by_key.values()),
            "rule_bidders": list(self.rule_types),
            **episode_outcome(self.lot_rows, self.bid_rows, len(self.participants)),
        }

    @classmethod
    def summarize(cls, run: RunTables) -> dict[str, pl.DataFrame]:
        return summarize(run)
