"""The auction's config: the one home of its defaults and their checks.

    simlab scenario=auction                                   # English, 2 houses, 3 bidders
    simlab scenario=auction scenario.format=first_price       # english | first_price | second_price
    simlab scenario=auction 'scenario.rule_bidders=[truthful,shading]'   # mixed LLM + rule bidders
    simlab scenario=auction population=census                 # budgets from census income
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from scenarios.auction.bidders import RULE_TYPES
from scenarios.auction.rules import FORMATS
from simlab.scenario_config import ScenarioConfig, choice, choices


class AuctionFormat(StrEnum):
    english = "english"
    first_price = "first_price"
    second_price = "second_price"


class RuleBidder(StrEnum):
    truthful = "truthful"
    shading = "shading"
    random = "random"


class BidSchema(StrEnum):
    open = "open"  # any whole-dollar amount; the auctioneer's rules reject bad ones
    ladder = "ladder"  # amount is one of the legal bid levels (grammar-enforced backends)


BID_SCHEMAS = tuple(s.value for s in BidSchema)


@dataclass
class AuctionConfig(ScenarioConfig):
    """House auctions with persona bidders, after HARBOR."""

    name: str = "auction"
    format: AuctionFormat = AuctionFormat.english
    items_path: str | None = None  # None: the bundled houses (scenarios/auction/data)
    items: list[Any] = field(default_factory=list)  # inline items instead of a file
    n_items: int = 2  # houses sold, one after another
    n_bidders: int = 3  # small enough for the embedded model; HARBOR used more
    # truthful | shading | random: the first seats answer by rule
    rule_bidders: list[RuleBidder] = field(default_factory=list)
    shuffle: bool = True  # draw bidders and houses at random (false: first n in file order)
    min_increment: int = 10_000  # English: least raise over the high bid (a house may set its own)
    max_rounds: int = 3  # English: a lot closes (sold to the high bidder) after this many rounds
    value_noise: float = 0.1  # spread of a bidder's estimate around its true value (log scale)
    taste_sd: float = 0.1  # idiosyncratic taste on top of feature preferences (log scale)
    budget_income_multiple: float = 5.0  # census bidders: budget = income_usd x this
    shade: float | None = None  # shading bidders: None = first-price equilibrium, or a factor
    random_out_p: float = 0.3  # random bidders: chance to drop out when asked
    # ladder: amount is one of the legal bid levels (enforced by grammar backends and the
    # mock); open: any integer, the rules reject
    bid_schema: BidSchema = BidSchema.ladder
    ladder_size: int = 6  # English: minimum bid plus up to 5 jump increments
    # bidders add a short public remark ("say") to each action; off by default:
    # grammar-forced strings are slow and garbled at 135M
    talk: bool = False
    plan: bool = False  # bidders keep a private written plan (HARBOR)
    profiling: bool = False  # bidders write private profiles of their rivals (HARBOR)
    ask_dropped: bool = False  # keep asking bidders who dropped out (to measure rule adherence)
    max_tokens: int = 80
    temperature: float = 0.7
    top_p: float = 0.95

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rule_bidders = check_settings(
            format=self.format, bid_schema=self.bid_schema, rule_bidders=self.rule_bidders,
            ints={"n_items": self.n_items, "n_bidders": self.n_bidders,
                  "min_increment": self.min_increment, "max_rounds": self.max_rounds,
                  "ladder_size": self.ladder_size},
            nonneg={"value_noise": self.value_noise, "taste_sd": self.taste_sd,
                    "budget_income_multiple": self.budget_income_multiple},
            shade=self.shade, random_out_p=self.random_out_p)
        self.format = choice(AuctionFormat, self.format, "format")
        self.bid_schema = choice(BidSchema, self.bid_schema, "bid_schema")


def check_settings(*, format: str, bid_schema: str, rule_bidders: Sequence[Any],
                   ints: Mapping[str, int], nonneg: Mapping[str, float],
                   shade: float | None, random_out_p: float) -> list[RuleBidder]:
    """Validate an auction's settings (errors name the ``scenario.`` key); returns the
    rule-bidder types."""
    if format not in FORMATS:
        raise ValueError(f"scenario.format: expected one of {FORMATS}, got {format!r}")
    if bid_schema not in BID_SCHEMAS:
        raise ValueError(f"scenario.bid_schema: expected one of {BID_SCHEMAS}, "
                         f"got {bid_schema!r}")
    for key, value in ints.items():
        if value < 1:
            raise ValueError(f"scenario.{key}: must be >= 1, got {value}")
    for key, fvalue in nonneg.items():
        if fvalue < 0:
            raise ValueError(f"scenario.{key}: must be >= 0, got {fvalue}")
    if shade is not None and not 0 < shade <= 1:
        raise ValueError(f"scenario.shade: must be in (0, 1] or null, got {shade}")
    if not 0 <= random_out_p <= 1:
        raise ValueError(f"scenario.random_out_p: must be in [0, 1], got {random_out_p}")
    rules = [str(getattr(r, "value", r)) for r in rule_bidders]
    unknown = [r for r in rules if r not in RULE_TYPES]
    if unknown:
        raise ValueError(f"scenario.rule_bidders: unknown type(s) {unknown} "
                         f"(known: {', '.join(RULE_TYPES)})")
    if len(rules) > ints["n_bidders"]:
        raise ValueError(f"scenario.rule_bidders: {len(rules)} rule bidders but only "
                         f"n_bidders={ints['n_bidders']} seats")
    return choices(RuleBidder, rules, "rule_bidders")
