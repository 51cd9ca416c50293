"""Rule-based bidder types: baselines, test fixtures, and rivals for LLM bidders.

Each strategy maps what the bidder knows (its value estimate, remaining budget, the
lot's minimum bid, the number of bidders) to an action dict like the one an LLM returns,
so rule bidders answer through ``Scenario.local_response`` and then go through the same
validation and clearing as model bidders.

- ``truthful``: English: take the minimum bid while it is at most min(value, budget)
  (the dominant "stay in until the price reaches your value" strategy). Sealed: bid
  min(value, budget) — dominant in second-price, zero profit in first-price.
- ``shading``: the symmetric risk-neutral first-price equilibrium for independent private
  values uniform on [0, V] with reserve r and n bidders,
  b(v) = v - (v^n - r^n) / (n v^(n-1))  (= (n-1)/n * v when r = 0; Krishna, *Auction
  Theory*, ch. 2), or ``shade * v`` when a fixed factor is configured. In English it
  stops at that level instead of its value.
- ``random``: out with probability ``out_p``; otherwise a uniform bid between the
  minimum and min(budget, 1.5 * value) (English: at most four increments above the
  minimum), whole thousands. Draws from the episode RNG, so a seed fixes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scenarios.auction.rules import BID, ENGLISH, OUT

RULE_TYPES = ("truthful", "shading", "random")


def first_price_bid(value: float, n: int, reserve: float = 0.0) -> float:
    """Equilibrium first-price bid, uniform IPV on [0, V] with a reserve (see module doc).

    A value below the reserve does not bid (returns the value itself, which is below
    the minimum); one bidder alone bids the reserve.
    """
    if value <= 0 or value < reserve:
        return value
    if n <= 1:
        return reserve
    # v - (v^n - r^n)/(n v^(n-1)) written without the huge powers of dollar amounts
    return value - (value - reserve * (reserve / value) ** (n - 1)) / n


def _out() -> dict[str, Any]:
    return {"action": OUT}


def _bid(amount: float) -> dict[str, Any]:
    return {"action": BID, "amount": int(amount)}


def rule_action(
    kind: str,
    fmt: str,
    *,
    value: int,
    budget: int,
    min_bid: int,
    start_price: int,
    increment: int,
    n_bidders: int,
    rng: np.random.Generator,
    shade: float | None = None,
    out_p: float = 0.3,
) -> dict[str, Any]:
    """The action of a ``kind`` rule bidder facing a lot whose minimum bid is ``min_bid``."""
    if kind == "truthful":
        cap = min(value, budget)
        if fmt == ENGLISH:
            return _bid(min_bid) if min_bid <= cap else _out()
        return _bid(cap) if cap >= min_bid else _out()
    if kind == "shading":
        level = value * shade if shade is not None else first_price_bid(
            value, n_bidders, start_price)
        cap = min(round(level), budget)
        if fmt == ENGLISH:
            return _bid(min_bid) if min_bid <= cap else _out()
        return _bid(cap) if cap >= min_bid else _out()
    if kind == "random":
        if rng.random() < out_p:
            return _out()
        high = min(budget, int(1.5 * value))
        if fmt == ENGLISH:
            high = min(high, min_bid + 4 * increment)
        if high < min_bid:
            return _out()
        amount = int(rng.integers(min_bid, high + 1))
        rounded = -(-amount // 1000) * 1000  # up to whole thousands, within the range
        return _bid(rounded if rounded <= high else amount)
    raise ValueError(f"scenario.rule_bidders: unknown bidder type {kind!r} "
                     f"(known: {', '.join(RULE_TYPES)})")
