"""Auction metrics beside their textbook benchmarks, from the store alone.

Benchmarks (per lot, from what the bidders knew when the lot opened). A bidder's
*effective value* is ``min(estimate, remaining budget)``: what a truthful bidder can bid.
With v(1) >= v(2) the two highest effective values, r the start price (the reserve) and
n the number of bidders:

- English and second-price: truthful bidding is dominant, so the bidder with v(1) wins
  and pays max(v(2), r) (English: up to one increment either way, as prices move in
  steps);
- first-price: the symmetric risk-neutral equilibrium for independent private values
  uniform on [0, V] with reserve r, b(v) = v - (v^n - r^n)/(n v^(n-1)); with r = 0 this is
  the familiar (n-1)/n * v (Krishna, *Auction Theory*, 2nd ed., ch. 2). The bidder with
  v(1) wins and pays b(v(1));
- a lot is unsold in the benchmark when v(1) < r.

All three formats are efficient in that equilibrium (welfare share 1, without budget
limits); no equilibrium bid exceeds its bidder's value or budget, and no rule is ever
broken, so those rates are benchmarked at 0. Sealed formats take one round; English
has no textbook round count (left empty).

Metric definitions (per episode):

- ``revenue``: sum of prices paid;
- ``welfare_share``: sum of winners' true values / sum over lots of the highest true
  value among the bidders (unsold lots add 0 above the line);
- ``efficient_items``: share of lots won by a bidder with the highest true value;
- ``profit_per_bidder``: sum of (winner's true value - price) / number of bidders;
- ``overbid_value_rate``: share of accepted bids above the bidder's own estimate;
- ``overbid_budget_rate``: share of bid attempts whose amount reached the auctioneer
  that exceeded the remaining budget (rejected, so only attempts show it);
- ``rounds_per_item``: mean rounds per closed lot;
- ``invalid_action_rate``: rejected attempts (malformed, schema, rule) / all attempts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from scenarios.auction.bidders import first_price_bid
from simlab.analysis.runs import summarize_runs

METRICS = ("revenue", "welfare_share", "efficient_items", "profit_per_bidder",
           "overbid_value_rate", "overbid_budget_rate", "rounds_per_item",
           "invalid_action_rate")
BASIS = {
    "revenue": "English/second-price: max(v(2), r) (truthful); first-price: "
               "b(v(1)) = v - (v^n - r^n)/(n v^(n-1)) (uniform IPV equilibrium)",
    "welfare_share": "1: every standard format is efficient in symmetric IPV equilibrium",
    "efficient_items": "1: the highest value wins in equilibrium",
    "profit_per_bidder": "benchmark winner's true value minus benchmark price, per bidder",
    "overbid_value_rate": "0: no equilibrium bid exceeds the bidder's value",
    "overbid_budget_rate": "0: budgets are hard limits",
    "rounds_per_item": "sealed: 1; English: no textbook benchmark",
    "invalid_action_rate": "0: rational bidders follow the rules",
}
FORMAT_ORDER = {"english": 0, "first_price": 1, "second_price": 2}


def lot_benchmark(fmt: str, snap: Mapping[str, Mapping[str, int]], seats: Sequence[str],
                  reserve: int) -> dict[str, Any]:
    """Benchmark outcome of one lot from the lot-open ``snap`` (estimate/true/budget)."""
    eff = sorted(((min(snap[k]["estimate"], snap[k]["budget"]), i, k)
                  for i, k in enumerate(seats)), key=lambda t: (-t[0], t[1]))
    v1 = eff[0][0]
    v2 = eff[1][0] if len(eff) > 1 else None
    if v1 < reserve:
        return {"v1": v1, "v2": v2, "bench_winner": None, "bench_price": None,
                "bench_revenue": 0, "bench_profit": 0}
    winner = eff[0][2]
    if fmt == "first_price":
        price = round(first_price_bid(v1, len(seats), reserve))
    else:
        price = max(v2 or 0, reserve)
    return {"v1": v1, "v2": v2, "bench_winner": winner, "bench_price": price,
            "bench_revenue": price, "bench_profit": snap[winner]["true"] - price}


def lot_row(lot: Any, fmt: str, snap: Mapping[str, Mapping[str, int]], seats: Sequence[str],
            types: Mapping[str, str]) -> dict[str, Any]:
    """The ``items`` row of a closed lot (``auction_rules.Lot``) with its benchmark."""
    winner = lot.leader if lot.sold else None
    top_true = max(s["true"] for s in snap.values())
    return {
        "lot": lot.index, "item_id": lot.item.id, "item_name": lot.item.name,
        "format": fmt, "n_bidders": len(seats), "market_value": lot.item.value,
        "start_price": lot.item.start_price, "increment": lot.increment, "sold": lot.sold,
        "closed": lot.closed, "rounds": lot.rounds, "winner": winner,
        "winner_type": types[winner] if winner else None,
        "price": lot.high_bid if winner else None,
        "revenue": lot.high_bid if winner else 0,
        "winner_true_value": snap[winner]["true"] if winner else None,
        "winner_estimate": snap[winner]["estimate"] if winner else None,
        "max_true_value": top_true,
        "efficient": bool(winner) and snap[winner]["true"] == top_true,
        "welfare": snap[winner]["true"] if winner else 0,
        **lot_benchmark(fmt, snap, seats, lot.item.start_price),
    }


def bidder_rows(agents: Mapping[str, Any], seats: Sequence[str],
                lots: Sequence[Mapping[str, Any]], bids: Sequence[Mapping[str, Any]]
                ) -> list[dict[str, Any]]:
    """The ``bidders`` rows: what each bidder won, paid, gained and got wrong."""
    rows = []
    for key in seats:
        a = agents[key]
        won = [r for r in lots if r["winner"] == key]
        mine = [r for r in bids if r["bidder"] == key]
        accepted = [r for r in mine if r["final"] and r["valid"] and r["action"] == "bid"]
        rows.append({
            "agent_id": key, "name": a.name, "persona_id": a.persona.id,
            "bidder_type": a.state["type"], "budget": a.state["budget"],
            "spent": a.state["spent"], "n_won": len(won),
            "items_won": [r["item_id"] for r in won],
            "profit": sum(r["winner_true_value"] - r["price"] for r in won),
            "profit_estimate": sum(r["winner_estimate"] - r["price"] for r in won),
            "bench_profit": sum(r["bench_profit"] for r in lots if r["bench_winner"] == key),
            "n_attempts": len(mine), "n_invalid": sum(not r["valid"] for r in mine),
            "n_bids": len(accepted),
            "n_over_value": sum(r["over_value"] for r in accepted),
            "n_over_budget": sum(r["over_budget"] for r in mine),
        })
    return rows


def _mean(values: Iterable[float]) -> float | None:
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else None


def episode_metrics(items: Sequence[Mapping[str, Any]], bids: Sequence[Mapping[str, Any]],
                    n_bidders: int, fmt: str) -> list[dict[str, Any]]:
    """Rows ``{metric, value, benchmark, basis}`` for one episode's lots and bids."""
    sold = [r for r in items if r["sold"]]
    top = sum(r["max_true_value"] for r in items)
    accepted = [b for b in bids if b["final"] and b["valid"] and b["action"] == "bid"]
    with_amount = [b for b in bids if b["amount"] is not None]
    n = max(n_bidders, 1)
    values = {
        "revenue": (sum(r["revenue"] for r in items), sum(r["bench_revenue"] for r in items)),
        "welfare_share": (sum(r["welfare"] for r in items) / top if top else None,
                          1.0 if items else None),
        "efficient_items": (_mean(r["efficient"] for r in items), 1.0 if items else None),
        "profit_per_bidder": (sum(r["winner_true_value"] - r["price"] for r in sold) / n,
                              sum(r["bench_profit"] for r in items) / n),
        "overbid_value_rate": (_mean(b["over_value"] for b in accepted), 0.0),
        "overbid_budget_rate": (_mean(b["over_budget"] for b in with_amount), 0.0),
        "rounds_per_item": (_mean(r["rounds"] for r in items),
                            None if fmt == "english" else 1.0),
        "invalid_action_rate": (_mean(not b["valid"] for b in bids), 0.0),
    }
    return [{"metric": m, "value": values[m][0], "benchmark": values[m][1], "basis": BASIS[m]}
            for m in METRICS]


def episode_outcome(items: Sequence[Mapping[str, Any]], bids: Sequence[Mapping[str, Any]],
                    n_bidders: int) -> dict[str, Any]:
    """Flat per-episode columns for the ``episodes`` table: each metric and its benchmark."""
    fmt = items[0]["format"] if items else ""
    out: dict[str, Any] = {
        "n_sold": sum(bool(r["sold"]) for r in items),
        "n_attempts": len(bids),
        "n_invalid": sum(not b["valid"] for b in bids),
    }
    for row in episode_metrics(items, bids, n_bidders, fmt):
        out[row["metric"]] = row["value"]
        out[f"{row['metric']}_benchmark"] = row["benchmark"]
    return out


def _rows(df: pl.DataFrame | None, episode_id: str) -> list[dict[str, Any]]:
    if df is None or "episode_id" not in df.columns:
        return []
    return df.filter(pl.col("episode_id") == episode_id).to_dicts()


def _traits(attributes_json: str | None) -> dict[str, Any]:
    """Readable persona traits: lowercase scalar attributes and ``big_five`` levels."""
    try:
        attrs = json.loads(attributes_json) if attributes_json else {}
    except json.JSONDecodeError:
        return {}
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key == "big_five" and isinstance(value, Mapping):
            out.update({f"big_five_{t}": v for t, v in value.items()})
        elif key.islower() and isinstance(value, str | int | float | bool):
            out[key] = value
    return out


def summarize(run: Any) -> dict[str, pl.DataFrame]:
    """The auction's metric tables for a stored run (``Scenario.summarize``).

    - ``auction_metrics``: one row per (episode, metric) with value, benchmark, basis;
    - ``auction_items``: one row per lot (winner, price, efficiency, benchmark);
    - ``auction_bidders``: one row per bidder with profit, overbidding and persona
      traits (for tables by trait, see :func:`by_trait`).
    """
    items, bids = run.tables.get("items"), run.tables.get("bids")
    bidders = run.tables.get("bidders")
    if items is None or run.episodes.is_empty():
        return {}
    rows = []
    for ep in run.episodes.iter_rows(named=True):
        eid = ep["episode_id"]
        lots = _rows(items, eid)
        fmt = ep.get("format") or (lots[0]["format"] if lots else "")
        n = ep.get("n_bidders") or len(ep.get("participants") or [])
        for m in episode_metrics(lots, _rows(bids, eid), n, fmt):
            rows.append({"episode_id": eid, "seed": ep["seed"], "format": fmt,
                         "n_bidders": n, "n_llm_bidders": ep.get("n_llm_bidders"), **m})
    out = {"auction_metrics": pl.DataFrame(rows, infer_schema_length=None),
           "auction_items": items}
    if bidders is not None:
        out["auction_bidders"] = _bidders_with_traits(bidders, run)
    return out


def _bidders_with_traits(bidders: pl.DataFrame, run: Any) -> pl.DataFrame:
    fmt = run.episodes.select("episode_id", *[c for c in ("format",)
                                              if c in run.episodes.columns])
    df = bidders.join(fmt, on="episode_id", how="left")
    agents = run.agents
    keep = [c for c in ("age", "gender", "occupation", "temperament", "attributes_json")
            if c in agents.columns]
    if keep:
        df = df.join(agents.select("episode_id", "agent_id", *keep),
                     on=["episode_id", "agent_id"], how="left")
    if "attributes_json" in df.columns:
        traits = [_traits(a) for a in df["attributes_json"].to_list()]
        if any(traits):
            df = pl.concat([df.drop("attributes_json"),
                            pl.DataFrame(traits, infer_schema_length=None)], how="horizontal")
        else:
            df = df.drop("attributes_json")
    return df


def by_trait(bidders: pl.DataFrame, trait: str, by: Sequence[str] = ("format",)
             ) -> pl.DataFrame:
    """Bidder outcomes grouped by a persona trait (e.g. ``risk``, ``big_five_openness``)."""
    if trait not in bidders.columns:
        raise ValueError(f"by_trait: no column {trait!r} (have {sorted(bidders.columns)})")
    keys = [*[c for c in by if c in bidders.columns], trait]
    return (bidders.group_by(keys)
            .agg(pl.len().alias("bidders"),
                 pl.col("profit").mean().alias("mean_profit"),
                 pl.col("bench_profit").mean().alias("mean_bench_profit"),
                 (pl.col("n_won").sum() / pl.len()).alias("wins_per_bidder"),
                 (pl.col("n_over_value").sum() / pl.col("n_bids").sum())
                 .alias("overbid_value_rate"),
                 (pl.col("n_invalid").sum() / pl.col("n_attempts").sum())
                 .alias("invalid_action_rate"))
            .sort(keys))


def compare_formats(metrics: pl.DataFrame) -> pl.DataFrame:
    """Each metric beside its benchmark per format, over every episode of every run: the
    sweep's headline table (rows in :data:`METRICS` order, formats in a fixed order)."""
    return (metrics.group_by("format", "metric")
            .agg(pl.len().alias("episodes"), pl.col("value").mean(),
                 pl.col("value").std().alias("value_std"), pl.col("benchmark").mean(),
                 pl.col("basis").first())
            .with_columns(pl.col("metric").replace_strict(
                {m: i for i, m in enumerate(METRICS)}, default=len(METRICS)).alias("_m"),
                pl.col("format").replace_strict(FORMAT_ORDER, default=9).alias("_f"))
            .sort("_m", "_f").drop("_m", "_f"))


def auction_comparison(paths: Sequence[str | Path]) -> pl.DataFrame:
    """Metrics beside benchmarks per format across a sweep's runs, e.g.
    ``auction_comparison(["runs/multirun/auction/<timestamp>"])`` after
    ``simlab -m scenario=auction scenario.format=english,first_price,second_price seed=0,1,2``.
    """
    tables = summarize_runs(paths)
    if "auction_metrics" not in tables:
        raise ValueError(f"{', '.join(map(str, paths))}: no auction runs found")
    return compare_formats(tables["auction_metrics"])
