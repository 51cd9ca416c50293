"""What bidders read and must answer in: instructions, announcements, the action schema.

Kept apart from the auction model so the wording (which small models are sensitive to,
and which sets the prompt length and so the run time) can be read and tuned in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scenarios.auction.items import Item
from scenarios.auction.rules import BID, ENGLISH, OUT, Action, Lot
from simlab.personas.model import Persona
from simlab.text import persona_card

FORMAT_NAMES = {
    "english": "English ascending auction",
    "first_price": "sealed-bid first-price auction",
    "second_price": "sealed-bid second-price auction",
}
#: Optional free-text fields of an action: (config flag name, JSON key, max length, meaning)
TEXT_FIELDS = (
    ("talk", "say", 120, "a short remark to the room, in your own voice"),
    ("plan", "plan", 200, "your private plan for the auction, one sentence"),
    ("profiling", "rivals", 200,
     "your private guess about your rivals' budgets and how much they want this house"),
)


def system_prompt(persona: Persona, fmt: str, *, ladder: bool,
                  flags: Mapping[str, bool]) -> str:
    """Auction rules and reply format, then the persona card.

    Rules come first so every bidder's prompt opens with the same tokens, which llama.cpp
    reuses from the previous request's KV cache (bidders are asked one after another).
    """
    amount = "whole dollars, ignored when out" if ladder else "whole dollars, only for a bid"
    fields = [f'"action": "bid" or "out", "amount": {amount}']
    fields += [f'"{key}": {meaning}' for flag, key, _, meaning in TEXT_FIELDS if flags[flag]]
    return (
        f"You bid your own money at a house auction ({FORMAT_NAMES[fmt]}), one house at a "
        "time. The auctioneer tells you privately what each house is worth to you and your "
        "remaining budget; never bid above that budget. Buying below your value is a gain, "
        "above it a loss. Out means out of this house for good.\n"
        f"Reply with JSON only: {{{', '.join(fields)}}}.\n\n"
        f"{persona_card(persona)}"
    )


def action_schema(levels: Sequence[int] | None, flags: Mapping[str, bool]) -> dict[str, Any]:
    """The reply's JSON schema. ``levels``: the legal amounts (``bid_schema=ladder``; an
    empty list leaves only ``out``), or None for any whole amount (``open``)."""
    actions = [BID, OUT] if levels is None or levels else [OUT]
    props: dict[str, Any] = {"action": {"type": "string", "enum": actions}}
    required = ["action"]
    if levels is None:
        props["amount"] = {"type": "integer", "minimum": 0}
    elif levels:
        # Small models skip optional keys; with a ladder every reply carries an amount
        # (ignored for "out"), so a bid can never lack one.
        props["amount"] = {"type": "integer", "enum": list(levels)}
        required.append("amount")
    for flag, key, limit, _ in TEXT_FIELDS:
        if flags[flag]:
            props[key] = {"type": "string", "maxLength": limit}
            required.append(key)
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}


def welcome(names: Sequence[str], items: Sequence[Item]) -> str:
    lots = "; ".join(f"{i + 1}. {it.name}" for i, it in enumerate(items))
    return f"Welcome to the auction. Bidders: {', '.join(names)}. Lots: {lots}."


def lot_announcement(lot: Lot, n_lots: int, fmt: str) -> str:
    start, inc = lot.item.start_price, lot.increment
    if fmt == ENGLISH:
        rules = f"Opening bid ${start:,}; raises of at least ${inc:,}."
    else:
        pays = ("its own bid" if fmt == "first_price" else
                f"the second-highest bid (or ${start:,} if alone)")
        rules = f"Sealed bids of at least ${start:,}; the highest bid wins and pays {pays}."
    return f"Lot {lot.index + 1} of {n_lots}: {lot.item.blurb()}. {rules}"


def private_briefing(name: str, item: Item, estimate: int, budget: int) -> str:
    return (f"Private note for {name}: you estimate {item.name} is worth ${estimate:,} to "
            f"you. Your remaining budget is ${budget:,}.")


def round_news(lot: Lot, moves: Sequence[tuple[str, Action]], forced: Sequence[str],
               names: Mapping[str, str]) -> str:
    """The auctioneer's call after an English round (the bids themselves were heard)."""
    text = f"Round {lot.rounds} for {lot.item.name}:"
    if lot.leader is not None:
        text += f" high bid ${lot.high_bid:,} ({names[lot.leader]})."
    else:
        text += " no bids."
    outs = [names[k] + (" (invalid action)" if k in forced else "")
            for k, a in moves if a.kind == OUT]
    if outs:
        text += f" Out: {', '.join(outs)}."
    if not lot.closed:
        text += f" Next: bid at least ${lot.min_bid:,} or drop out."
    return text


def sealed_news(lot: Lot, n_bids: int) -> str:
    return (f"The sealed bids for {lot.item.name} are opened: "
            f"{n_bids} bid{'s' if n_bids != 1 else ''}.")


def describe(action: Action) -> str:
    """The readable form of an action, as recorded and as the bidder sees its own."""
    return f"I bid ${action.amount:,}." if action.kind == BID else "I'm out."


def reask_note(error: str) -> str:
    return f"[Auctioneer] Your last reply was rejected: {error}. Reply again with JSON only."
