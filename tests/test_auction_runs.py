"""Auction runs through the runner and store: config, mixed bidders, tables, sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import compose

from scenarios.auction import AuctionScenario
from scenarios.auction.metrics import METRICS, auction_comparison, by_trait, compare_formats
from simlab.analysis.runs import summarize_runs
from simlab.events import WALL_CLOCK_COLUMNS
from simlab.registry import spec_of_run
from simlab.runner import run
from simlab.store import load_run

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, name: str, *overrides: str):
    cfg = compose("scenario=auction", "backend=mock", "progress=false", *overrides)
    run(cfg, tmp_path / name)
    return load_run(tmp_path / name)


def test_auction_config_defaults_to_the_bidder_personas():
    cfg = compose("scenario=auction")
    assert cfg.population.kind.value == "file" and cfg.population.path == "personas/bidders.yaml"
    assert cfg.scenario.format.value == "english" and cfg.scenario.n_bidders == 3
    assert cfg.backend.name == "llamacpp"
    assert compose("scenario=auction", "population=curated").population.kind.value == "curated"
    assert compose().population.kind.value == "curated"  # dialogue keeps its default
    with pytest.raises(Exception, match="format"):
        compose("scenario=auction", "scenario.format=dutch")
    with pytest.raises(Exception, match="rule_bidders"):
        compose("scenario=auction", "scenario.rule_bidders=[greedy]")


def test_mock_run_writes_every_bid_dropout_and_sale(tmp_path):
    t = _run(tmp_path, "r", "episodes=2")
    kinds = t.events["kind"].value_counts().to_dicts()
    counts = {d["kind"]: d["count"] for d in kinds}
    assert counts["bid"] > 0 and counts["out"] > 0
    sold = t.tables["items"].filter(pl.col("sold")).height
    assert counts.get("sale", 0) == sold and counts.get("sale", 0) + counts.get("unsold", 0) == 4
    # with the ladder schema the mock only ever offers legal bids
    assert t.episodes["invalid_action_rate"].to_list() == [0.0, 0.0]
    bids = t.tables["bids"].filter(pl.col("action") == "bid")
    assert (bids["amount"] >= bids["min_bid"]).all() and (bids["amount"] <= bids["budget"]).all()
    assert set(t.tables) == {"items", "bids", "bidders"}
    assert t.episodes["termination_reason"].to_list() == ["auction_complete"] * 2


def test_mixed_llm_and_rule_bidders(tmp_path):
    t = _run(tmp_path, "m", "episodes=1", "scenario.rule_bidders=[truthful,shading]",
             "scenario.n_bidders=4",
             "scenario.format=second_price")
    roles = dict(zip(t.agents["agent_id"], t.agents["role"], strict=True))
    assert sorted(roles.values()) == ["llm_bidder", "llm_bidder", "shading_bidder",
                                      "truthful_bidder"]
    acts = t.events.filter(pl.col("kind").is_in(["bid", "out"]))
    for row in acts.iter_rows(named=True):
        kind = roles[row["speaker"]].removesuffix("_bidder")
        if kind == "llm":
            assert (row["backend"], row["model"]) == ("mock", "mock/mock-1")
        else:
            assert (row["backend"], row["model"]) == ("rule", f"rule:{kind}")
    assert t.episodes["n_llm_bidders"].to_list() == [2]


def test_same_seed_same_events(tmp_path):
    a = _run(tmp_path, "a", "episodes=1", "seed=5", "scenario.rule_bidders=[random]")
    b = _run(tmp_path, "b", "episodes=1", "seed=5", "scenario.rule_bidders=[random]")
    c = _run(tmp_path, "c", "episodes=1", "seed=6", "scenario.rule_bidders=[random]")
    assert a.events.drop(WALL_CLOCK_COLUMNS).equals(b.events.drop(WALL_CLOCK_COLUMNS))
    assert not a.events["content"].equals(c.events["content"])


def test_sweep_over_formats_and_seeds_gives_one_metrics_table(tmp_path):
    sweep = tmp_path / "sweep"
    for i, fmt in enumerate(("english", "first_price", "second_price")):
        for seed in (0, 1):
            _run(sweep, f"{i}_{fmt}_{seed}", "episodes=1", f"seed={seed}",
                 f"scenario.format={fmt}")
    tables = summarize_runs([sweep])
    metrics = tables["auction_metrics"]
    assert metrics.height == 6 * len(METRICS)
    assert set(metrics["format"]) == {"english", "first_price", "second_price"}
    assert metrics["run_dir"].n_unique() == 6 and set(metrics["run_seed"]) == {0, 1}
    headline = compare_formats(metrics)
    assert headline.equals(auction_comparison([sweep]))
    assert headline.height == 3 * len(METRICS)
    assert headline.columns == ["format", "metric", "episodes", "value", "value_std",
                                "benchmark", "basis"]
    rounds = headline.filter(metric="rounds_per_item")
    assert rounds["benchmark"].to_list() == [None, 1.0, 1.0]
    assert headline.filter(metric="welfare_share")["benchmark"].to_list() == [1.0] * 3
    traits = by_trait(tables["auction_bidders"], "risk")
    assert set(traits["risk"]) <= {"cautious", "balanced", "bold"}
    assert traits["bidders"].sum() == 6 * 3
    with pytest.raises(ValueError, match="by_trait: no column 'nope'"):
        by_trait(tables["auction_bidders"], "nope")


def test_summarize_is_found_from_the_manifest(tmp_path):
    t = _run(tmp_path, "s", "episodes=1")
    scenario = t.manifest["config"]["scenario"]
    assert scenario["name"] == "auction" and "_target_" not in scenario
    assert spec_of_run(scenario).cls is AuctionScenario
    out = AuctionScenario.summarize(t)
    assert set(out) == {"auction_metrics", "auction_items", "auction_bidders"}
    m = out["auction_metrics"]
    ep = t.episodes.row(0, named=True)
    for row in m.iter_rows(named=True):  # the per-episode columns agree with the table
        assert ep[row["metric"]] == row["value"]
        assert ep[f"{row['metric']}_benchmark"] == row["benchmark"]
    bidders = out["auction_bidders"]
    assert {"risk", "budget_usd", "temperament", "profit", "format"} <= set(bidders.columns)
    assert json.loads(t.episodes["rule_bidders_json"][0]) == []


@pytest.mark.skipif(not (ROOT / "conf/population/census.yaml").exists(),
                    reason="population=census not built yet")
def test_census_population_budgets_follow_income(tmp_path):
    t = _run(tmp_path, "c", "episodes=1", "population=census")
    bidders = t.tables["bidders"].join(t.agents, on=["episode_id", "agent_id"])
    for row in bidders.iter_rows(named=True):
        income = json.loads(row["attributes_json"]).get("income_usd") or 0
        assert row["budget"] == round(max(income, 0) * 5.0)
