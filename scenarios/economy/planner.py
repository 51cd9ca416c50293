"""Planners of the labour & taxation scenario, their reply schema, and elections.

A planner sets the marginal rates every tax year. Kinds:

* ``llm`` — an LLM agent reads a text summary of last year's income and utility
  distributions and proposes a change per bracket (percentage points, at most
  ``max_change`` either way); new rates are clipped to [0, 100];
* ``saez`` — the Saez (2001) formula, evaluated on last year's incomes (below);
* ``us_federal`` — always the 2024 US federal schedule;
* ``fixed`` — keeps whatever schedule is in force (the status quo).

Rule planners answer through ``Scenario.local_response`` with the same JSON an LLM would
give, so every planner's reply goes through the same ``interpret`` and ``resolve``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from scenarios.economy.tax import (
    Settlement,
    TaxSchedule,
    gini,
    preset_schedule,
    usd,
    welfare,
)

PLANNERS = ("llm", "saez", "us_federal", "fixed")
PLATFORMS: dict[str, str] = {
    "llm": "an AI economist who adjusts the rates every year to raise the welfare of all",
    "saez": "sets each bracket's rate by the Saez optimal-tax formula from last year's "
            "incomes",
    "us_federal": "keeps the US federal income-tax brackets and rates",
    "fixed": "keeps this year's rates unchanged",
}
TITLES: dict[str, str] = {"llm": "LLM planner", "saez": "Saez planner",
                          "us_federal": "US federal planner", "fixed": "Status-quo planner"}


def plan_schema(n_brackets: int, max_change: int) -> dict[str, Any]:
    """JSON schema of an LLM planner's reply: one integer change per bracket."""
    return {
        "type": "object",
        "properties": {
            "changes": {
                "type": "array",
                # an enum, not minimum/maximum: grammar-constrained decoders (llama.cpp)
                # enforce enums but not integer bounds
                "items": {"type": "integer", "enum": list(range(-max_change, max_change + 1))},
                "minItems": n_brackets,
                "maxItems": n_brackets,
            },
            "reason": {"type": "string", "maxLength": 160},
        },
        "required": ["changes"],
        "additionalProperties": False,
    }


def read_plan(data: Any, schedule: TaxSchedule, max_change: int) -> TaxSchedule | str:
    """The schedule a planner's parsed reply asks for, or an error message.

    ``{"changes": [...]}`` adds per-bracket changes (each clipped to ±max_change, then the
    rates to [0, 100]); ``{"rates": [...], "thresholds": [...]}`` (rule planners) sets the
    schedule outright.
    """
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    if "rates" in data:
        try:
            return TaxSchedule(tuple(data.get("thresholds") or schedule.thresholds),
                               tuple(float(np.clip(r, 0, 100)) for r in data["rates"]))
        except (TypeError, ValueError) as exc:
            return f"bad rates: {exc}"
    changes = data.get("changes")
    if not isinstance(changes, list) or len(changes) != schedule.n:
        return f"'changes' must list {schedule.n} numbers, one per bracket, got {changes!r}"
    if not all(isinstance(c, int | float) and not isinstance(c, bool) for c in changes):
        return f"'changes' must be numbers, got {changes!r}"
    return schedule.adjusted([float(np.clip(c, -max_change, max_change)) for c in changes])


def saez_rates(
    schedule: TaxSchedule,
    pretax: Sequence[float],
    consumption: Sequence[float],
    *,
    eta: float,
    elasticity: float,
    min_count: int = 2,
) -> list[float]:
    """Per-bracket rates (percent) from the Saez (2001) optimal-tax formula.

    At income ``z``: ``τ(z) = (1 − G(z)) / (1 − G(z) + a(z)·e)`` where ``e`` is the
    elasticity of taxable income, ``a(z) = m(z) / (m(z) − z)`` the local Pareto parameter
    (``m(z)`` = mean income of those at or above ``z``), and ``G(z)`` the mean social
    marginal welfare weight of those at or above ``z``, with weights ``g_i ∝ c_i^(−η)``
    (marginal utility of consumption) normalised to mean 1 over everyone.

    Bracket ``k ≥ 1`` is evaluated at its lower threshold; the bottom bracket (starting at
    0, where the formula is degenerate) at its midpoint, or at the median income for a
    single-bracket schedule. A bracket with fewer than ``min_count`` incomes at or above
    its evaluation point keeps the rate computed for the bracket below it (or its current
    rate if it is the bottom one).
    """
    z = np.asarray(pretax, dtype=np.float64)
    c = np.maximum(np.asarray(consumption, dtype=np.float64), 1e-9)
    if len(z) == 0:
        return list(schedule.rates)
    g = np.power(c, -eta)
    g = g / g.mean()
    if schedule.n > 1:
        points = [schedule.thresholds[1] / 2, *schedule.thresholds[1:]]
    else:
        points = [float(np.median(z))]
    rates: list[float] = []
    for k, point in enumerate(points):
        above = z >= point
        m = float(z[above].mean()) if above.any() else 0.0
        if above.sum() < min_count or m <= point or point <= 0:
            rates.append(rates[-1] if rates else schedule.rates[k])
            continue
        a = m / (m - point)
        gbar = float(g[above].mean())
        tau = (1 - gbar) / (1 - gbar + a * elasticity)
        rates.append(round(float(np.clip(tau, 0.0, 1.0)) * 100, 2))
    return rates


def rule_plan(
    kind: str, schedule: TaxSchedule, year: list[Settlement], *, eta: float, elasticity: float,
    min_count: int,
) -> dict[str, Any]:
    """The reply a rule planner gives (same shape an LLM's reply is read in)."""
    if kind == "us_federal":
        us = preset_schedule("us_federal")
        return {"rates": list(us.rates), "thresholds": list(us.thresholds)}
    if kind == "fixed" or not year:
        return {"rates": list(schedule.rates)}
    if kind == "saez":
        pretax = np.concatenate([s.pretax for s in year])
        consumption = np.concatenate([s.consumption for s in year])
        return {"rates": saez_rates(schedule, pretax, consumption, eta=eta,
                                    elasticity=elasticity, min_count=min_count)}
    raise ValueError(f"scenario.planner: no rule for planner kind {kind!r}")


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q))


def year_summary(
    year_label: str, year: list[Settlement], schedule: TaxSchedule, income_floor: float
) -> str:
    """Text summary of a tax year's distributions, for the LLM planner (and voters)."""
    h = np.concatenate([s.hours for s in year])
    z = np.concatenate([s.pretax for s in year])
    c = np.concatenate([s.consumption for s in year])
    u = np.concatenate([s.utility for s in year])
    w_util, w_inv = welfare(u, z, income_floor)
    n = len(year[0].hours)
    revenue = sum(s.revenue for s in year) / len(year)
    last = year[-1]
    counts = np.bincount(schedule.bracket_of(last.pretax), minlength=schedule.n)
    brackets = "\n".join(
        f"  {k + 1}. {line} ({counts[k]} of {n} workers)"
        for k, line in enumerate(schedule.lines())
    )
    return (
        f"{year_label} summary ({len(year)} period(s), {n} workers; amounts per year):\n"
        f"- Hours worked per week: mean {h.mean():.0f}, median {np.median(h):.0f}, "
        f"10th percentile {_pct(h, 10):.0f}, 90th percentile {_pct(h, 90):.0f}.\n"
        f"- Pre-tax income: mean {usd(z.mean())}, median {usd(float(np.median(z)))}, "
        f"10th percentile {usd(_pct(z, 10))}, 90th percentile {usd(_pct(z, 90))}; "
        f"Gini {gini(z):.3f}.\n"
        f"- After tax and rebate: mean {usd(c.mean())}, median {usd(float(np.median(c)))}; "
        f"Gini {gini(c):.3f}.\n"
        f"- Tax revenue {usd(revenue)} per period, rebated as {usd(revenue / n)} "
        f"to each worker.\n"
        f"- Utility: mean {u.mean():.1f}, 10th percentile {_pct(u, 10):.1f}, "
        f"90th percentile {_pct(u, 90):.1f}.\n"
        f"- Social welfare: utilitarian {w_util:.1f}, inverse-income-weighted {w_inv:.1f}.\n"
        f"Current marginal tax rates:\n{brackets}"
    )


def elect(
    votes: Sequence[str | None], candidates: Sequence[str], rng: np.random.Generator,
    incumbent: str,
) -> tuple[str, dict[str, int], bool]:
    """Plurality winner, vote counts (every candidate listed) and whether a tie was broken.

    Votes for unknown names and abstentions (None) are not counted. Ties among the
    leaders are broken by one draw from ``rng`` (candidates in config order); when nobody
    voted, the incumbent stays and no draw is made.
    """
    tally = Counter(v for v in votes if v in candidates)
    counts = {c: tally.get(c, 0) for c in candidates}
    if not tally:
        return incumbent, counts, False
    top = max(counts.values())
    leaders = [c for c in candidates if counts[c] == top]
    if len(leaders) == 1:
        return leaders[0], counts, False
    return leaders[int(rng.integers(len(leaders)))], counts, True


OBJECTIVES = {"utilitarian": "the average utility of the workers",
              "inverse_income": "a weighted average of the workers' utilities in which "
                                "poorer workers count more"}


def check_settings(*, planner: str, worker_policy: str, planner_objective: str, ticks: int,
                   tax_year: int, n_workers: int | None, planner_max_change: int,
                   saez_elasticity: float, inverse_income_floor: float, skill_bands: int,
                   voting: bool, candidates: Sequence[str]) -> None:
    """Validate the economy's settings; errors name the ``scenario.`` key."""
    _check(planner in PLANNERS, "planner", f"one of {PLANNERS}", planner)
    _check(worker_policy in ("llm", "rule"), "worker_policy", "'llm' or 'rule'",
           worker_policy)
    _check(planner_objective in OBJECTIVES, "planner_objective", f"one of "
           f"{tuple(OBJECTIVES)}", planner_objective)
    _check(ticks >= 1, "ticks", ">= 1", ticks)
    _check(tax_year >= 1, "tax_year", ">= 1", tax_year)
    _check(n_workers is None or n_workers >= 2, "n_workers", ">= 2 (or null)", n_workers)
    _check(planner_max_change >= 1, "planner_max_change", ">= 1", planner_max_change)
    _check(saez_elasticity > 0, "saez_elasticity", "> 0", saez_elasticity)
    _check(inverse_income_floor > 0, "inverse_income_floor", "> 0", inverse_income_floor)
    _check(skill_bands >= 1, "skill_bands", ">= 1", skill_bands)
    if voting:
        bad = [c for c in candidates if c not in PLANNERS]
        _check(not bad and len(set(candidates)) == len(candidates) >= 2, "candidates",
               f"two or more distinct planner kinds from {PLANNERS}", list(candidates))
        _check(planner in candidates, "planner", f"one of the candidates "
               f"{list(candidates)} (the first incumbent)", planner)


def _check(ok: bool, key: str, expected: str, got: Any) -> None:
    if not ok:
        raise ValueError(f"scenario.{key}: expected {expected}, got {got!r}")
