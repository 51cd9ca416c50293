"""The auctioneer's rules: reading a bidder's action, checking it, clearing a lot.

Pure, deterministic code with no model and no RNG, so hand-worked auctions can be pinned
in tests and the scenario (``scenarios/auction.py``) only wires these rules to the engine.

Formats:

- ``english``: ascending, after HARBOR. A lot opens at its start price. In each round
  every bidder still in (except the standing high bidder) either raises — bids at least
  the start price, or the high bid plus the minimum increment — or drops out for good.
  The highest bid of the round becomes the high bid (ties: the earliest seat). The lot
  is sold to the high bidder at its bid when a round brings no new bid, when nobody but
  the high bidder is left in, or when the round cap is reached; a lot nobody bid on is
  withdrawn unsold.
- ``first_price``: one sealed round; the highest bid wins and pays its own bid.
- ``second_price`` (Vickrey): one sealed round; the highest bid wins and pays the
  second-highest bid, or the start price (the reserve) when it was the only bid.

Every bid must be at least the lot's minimum bid and at most the bidder's remaining
budget; a bidder that dropped out of a lot cannot bid on it again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scenarios.auction.items import Item
from simlab.backends.base import ChatResponse
from simlab.scheduler.policies import SchedulePolicy

if TYPE_CHECKING:
    from simlab.scenario import Scenario

ENGLISH, FIRST_PRICE, SECOND_PRICE = "english", "first_price", "second_price"
FORMATS = (ENGLISH, FIRST_PRICE, SECOND_PRICE)
SEALED = (FIRST_PRICE, SECOND_PRICE)
BID, OUT = "bid", "out"


@dataclass(frozen=True, slots=True)
class Action:
    """A bidder's move: ``bid`` with a whole-dollar ``amount``, or ``out``."""

    kind: str
    amount: int | None = None
    say: str = ""
    plan: str = ""
    rivals: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.kind}
        if self.kind == BID:
            out["amount"] = self.amount
        for key in ("say", "plan", "rivals"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


def parse_action(payload: Any) -> tuple[Action | None, str]:
    """Read a reply (parsed JSON or raw text) as an :class:`Action`, or say why not."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            return None, f"malformed JSON: {exc}"
    if not isinstance(payload, Mapping):
        return None, f"malformed action: expected a JSON object, got {type(payload).__name__}"
    kind = payload.get("action")
    if kind not in (BID, OUT):
        return None, f"unknown action {kind!r}: expected 'bid' or 'out'"
    texts = {}
    for key in ("say", "plan", "rivals"):
        value = payload.get(key, "")
        if not isinstance(value, str):
            return None, f"malformed action: {key!r} must be text, got {type(value).__name__}"
        texts[key] = " ".join(value.split())
    if kind == OUT:
        return Action(OUT, None, **texts), ""
    amount = payload.get("amount")
    if amount is None:
        return None, "a bid needs an 'amount' in whole dollars"
    if isinstance(amount, float) and amount.is_integer():
        amount = int(amount)
    if isinstance(amount, bool) or not isinstance(amount, int):
        return None, f"amount must be a whole number of dollars, got {amount!r}"
    return Action(BID, amount, **texts), ""


@dataclass
class Lot:
    """One item's sale in progress."""

    item: Item
    index: int
    increment: int
    high_bid: int | None = None
    leader: str | None = None
    rounds: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # bidder -> round it left in
    closed: str = ""  # "" while open; sold_no_new_bid | sold_last_bidder | sold_max_rounds
    #                   | sold_sealed | unsold

    @property
    def min_bid(self) -> int:
        """The least acceptable bid now: the start price, or high bid + increment."""
        if self.high_bid is None:
            return self.item.start_price
        return self.high_bid + self.increment

    @property
    def sold(self) -> bool:
        return self.closed.startswith("sold")


def check_bid(action: Action, *, bidder: str, lot: Lot, budget: int, fmt: str) -> str:
    """Why ``action`` breaks the rules, or ``""`` if it is legal. ``out`` is always legal."""
    if action.kind == OUT:
        return ""
    assert action.amount is not None
    name = lot.item.name
    if bidder in lot.dropped:
        return (f"bid after dropping out: you left the bidding for {name} in round "
                f"{lot.dropped[bidder]} and cannot come back in; reply out")
    if fmt == ENGLISH and bidder == lot.leader:
        return f"you already hold the high bid of ${lot.high_bid:,} for {name}; wait"
    if action.amount > budget:
        return (f"over budget: ${action.amount:,} is more than your remaining budget "
                f"${budget:,}")
    if action.amount < lot.min_bid:
        if lot.high_bid is None:
            return (f"below the minimum: bids for {name} start at ${lot.item.start_price:,}, "
                    f"you bid ${action.amount:,}")
        return (f"below the minimum raise: the high bid is ${lot.high_bid:,} and a raise "
                f"must be at least ${lot.increment:,}, so bid at least ${lot.min_bid:,} "
                f"(you bid ${action.amount:,})")
    return ""


def english_round(
    lot: Lot,
    actions: Sequence[tuple[str, Action]],
    seats: Sequence[str],
    max_rounds: int,
) -> None:
    """Apply one English round: legal ``actions`` in seat order (invalid ones already
    turned into ``out``); ``seats`` lists every bidder in seat order."""
    lot.rounds += 1
    bids = [(b, a.amount) for b, a in actions if a.kind == BID and a.amount is not None]
    for bidder, action in actions:
        if action.kind == OUT and bidder not in lot.dropped:
            lot.dropped[bidder] = lot.rounds
    if bids:
        top = max(amount for _, amount in bids)
        lot.leader = next(b for b, amount in bids if amount == top)  # earliest seat
        lot.high_bid = top
    rivals = [b for b in seats if b != lot.leader and b not in lot.dropped]
    if lot.leader is None:
        lot.closed = "unsold"  # a round without a bid and nobody ever bid
    elif not bids:
        lot.closed = "sold_no_new_bid"
    elif not rivals:
        lot.closed = "sold_last_bidder"
    elif lot.rounds >= max_rounds:
        lot.closed = "sold_max_rounds"


def clear_sealed(
    lot: Lot, bids: Sequence[tuple[str, int]], fmt: str
) -> None:
    """Clear a sealed lot from its legal ``bids`` in seat order (ties: earliest seat)."""
    lot.rounds += 1
    if not bids:
        lot.closed = "unsold"
        return
    top = max(amount for _, amount in bids)
    winner_pos = next(i for i, (_, amount) in enumerate(bids) if amount == top)
    lot.leader = bids[winner_pos][0]
    if fmt == FIRST_PRICE:
        lot.high_bid = top
    else:
        others = [amount for i, (_, amount) in enumerate(bids) if i != winner_pos]
        lot.high_bid = max([lot.item.start_price, *others])
    lot.closed = "sold_sealed"


def bid_levels(lot: Lot, budget: int, fmt: str, size: int, sealed_max: int = 40) -> list[int]:
    """The legal bid amounts offered as a JSON-schema enum (``bid_schema=ladder``).

    English: the minimum bid and jump bids of up to ``size - 1`` more increments.
    Sealed: from the start price up to the budget in steps of the increment, thinned to
    at most ``sealed_max`` levels (and always ending at the budget when it is reachable).
    Levels above ``budget`` are left out; an empty list means the bidder can only go out.
    """
    low = lot.min_bid
    if budget < low:
        return []
    if fmt == ENGLISH:
        return [lv for lv in (low + k * lot.increment for k in range(size)) if lv <= budget]
    steps = (budget - low) // lot.increment
    stride = max(1, -(-steps // (sealed_max - 1))) if steps else 1
    levels = [low + k * stride * lot.increment for k in range(steps // stride + 1)]
    if levels[-1] != budget and len(levels) < sealed_max:
        levels.append(budget)
    elif levels[-1] != budget:
        levels[-1] = budget
    return levels


class AuctionSchedule(SchedulePolicy):
    """The auctioneer decides who bids: everyone still in the current lot."""

    name = "auction"

    def select(self, scenario: Scenario, step: int) -> list[str]:
        return scenario.to_ask()  # type: ignore[attr-defined]  # an AuctionScenario


def raw_action(response: ChatResponse | None) -> Action | None:
    """Best-effort reading of a reply that failed its schema, for the bids table."""
    if response is None or not response.text:
        return None
    action, _ = parse_action(response.text)
    return action
