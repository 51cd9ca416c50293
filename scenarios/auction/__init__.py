"""House auctions with persona bidders (English, first- and second-price), after HARBOR."""

from scenarios.auction.config import AuctionConfig
from scenarios.auction.scenario import AuctionScenario
from simlab.registry import ScenarioSpec

SPEC = ScenarioSpec(
    "auction", AuctionScenario, AuctionConfig,
    summary="House auctions with persona bidders: English, first- or second-price (HARBOR).",
    default_population="bidders",  # personas/bidders.yaml: budgets and tastes
    engine={
        "max_steps": 100,
        "max_reasks": 2,  # re-ask an illegal action twice, then count it as out
        # a tick can hold several illegal actions; only a dead backend should end an
        # auction early
        "max_consecutive_failures": 12,
    },
)

__all__ = ["SPEC", "AuctionConfig", "AuctionScenario"]
