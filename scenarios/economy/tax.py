"""Tax, rebate, utility and welfare arithmetic of the labour & taxation scenario.

Pure numpy functions of arrays, kept apart from the scenario so every number the
scenario records can be checked by hand (``tests/test_economy_tax.py`` does).

Model (all parameters come from ``conf/scenario/economy.yaml``):

* a worker with **skill** ``w`` (USD per hour) who works ``l`` hours a week earns the
  annual **pre-tax income** ``z = l · w · weeks_per_year``;
* **tax** ``T(z)`` is piecewise linear: bracket ``k`` taxes the part of ``z`` between its
  lower threshold and the next one at its marginal rate (percent); no deductions;
* **revenue** ``R = Σ T(z_i)`` is **rebated equally**: each of the ``N`` workers gets
  ``R / N`` in the same period;
* **consumption** ``c = z − T(z) + R/N`` (floored at ``min_consumption`` so the
  isoelastic term stays finite when a worker earns and receives nothing);
* **utility** ``u = (c^(1−η) − 1)/(1−η) − ψ · l^(1+1/ε)/(1+1/ε)`` (``log c`` when
  ``η = 1``): isoelastic (CRRA ``η``) in consumption minus a disutility of labour with
  Frisch elasticity ``ε`` and weight ``ψ``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: The hour choices a worker has (per week): 0, 10, …, 100.
HOURS: tuple[int, ...] = tuple(range(0, 101, 10))

#: 2024 US federal income-tax brackets for single filers (IRS Rev. Proc. 2023-34):
#: lower thresholds in USD per year and marginal rates in percent.
US_FEDERAL_THRESHOLDS: tuple[float, ...] = (0, 11_600, 47_150, 100_525, 191_950, 243_725,
                                            609_350)
US_FEDERAL_RATES: tuple[float, ...] = (10, 12, 22, 24, 32, 35, 37)
#: A stylised three-bracket schedule (lower thresholds, rates), for comparisons.
THREE_BRACKET_THRESHOLDS: tuple[float, ...] = (0, 50_000, 150_000)
THREE_BRACKET_RATES: tuple[float, ...] = (10, 25, 40)
PRESETS = ("us_federal", "flat", "three_bracket", "custom")


@dataclass(frozen=True)
class TaxSchedule:
    """Piecewise-linear marginal tax rates.

    ``thresholds[k]`` is the lower bound (USD/year) of bracket ``k``; the first is 0 and
    they increase strictly; the last bracket is open-ended. ``rates[k]`` is its marginal
    rate in percent, within [0, 100].
    """

    thresholds: tuple[float, ...]
    rates: tuple[float, ...]

    def __post_init__(self) -> None:
        t = tuple(float(x) for x in self.thresholds)
        r = tuple(float(x) for x in self.rates)
        if not t or len(t) != len(r):
            raise ValueError(f"scenario.brackets/rates: need one rate per bracket, got "
                             f"{len(t)} brackets and {len(r)} rates")
        if t[0] != 0:
            raise ValueError(f"scenario.brackets: the first bracket must start at 0, got {t[0]}")
        if any(b <= a for a, b in itertools.pairwise(t)):
            raise ValueError(f"scenario.brackets: thresholds must increase strictly, got {t}")
        bad = [x for x in r if not (0 <= x <= 100) or math.isnan(x)]
        if bad:
            raise ValueError(f"scenario.rates: rates are percent in [0, 100], got {bad}")
        object.__setattr__(self, "thresholds", t)
        object.__setattr__(self, "rates", r)

    @property
    def n(self) -> int:
        return len(self.rates)

    def tax(self, income: ArrayLike) -> NDArray[np.float64]:
        """Tax owed on each (annual, pre-tax) income; negative incomes owe nothing."""
        z = np.maximum(np.asarray(income, dtype=np.float64), 0.0)
        lower = np.asarray(self.thresholds)
        width = np.append(np.diff(lower), np.inf)
        slices = np.clip(z[..., None] - lower, 0.0, width)
        return slices @ (np.asarray(self.rates) / 100.0)

    def bracket_of(self, income: ArrayLike) -> NDArray[np.int64]:
        """Index of the bracket each income falls in (its marginal bracket)."""
        z = np.maximum(np.asarray(income, dtype=np.float64), 0.0)
        return np.searchsorted(np.asarray(self.thresholds), z, side="right") - 1

    def marginal_rate(self, income: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(self.rates)[self.bracket_of(income)]

    def with_rates(self, rates: Sequence[float]) -> TaxSchedule:
        """Same brackets, new rates clipped to [0, 100]."""
        if len(rates) != self.n:
            raise ValueError(f"expected {self.n} rates, got {len(rates)}")
        return TaxSchedule(self.thresholds, tuple(float(np.clip(x, 0, 100)) for x in rates))

    def adjusted(self, changes: Sequence[float]) -> TaxSchedule:
        """Add per-bracket changes (percentage points); results clipped to [0, 100]."""
        if len(changes) != self.n:
            raise ValueError(f"expected {self.n} rate changes, got {len(changes)}")
        return self.with_rates([r + c for r, c in zip(self.rates, changes, strict=True)])

    def lines(self) -> list[str]:
        """Readable brackets, e.g. ``12% on $11,600-$47,150`` (short: every worker's
        prompt carries the schedule)."""
        out = []
        for k, (lo, rate) in enumerate(zip(self.thresholds, self.rates, strict=True)):
            pct = f"{rate:g}%"
            if self.n == 1:
                out.append(f"{pct} on all income")
            elif k == 0:
                out.append(f"{pct} on the first {usd(self.thresholds[1])}")
            elif k == self.n - 1:
                out.append(f"{pct} above {usd(lo)}")
            else:
                out.append(f"{pct} on {usd(lo)}-{usd(self.thresholds[k + 1])}")
        return out

    def describe(self) -> str:
        return "; ".join(self.lines())


def usd(x: float) -> str:
    return f"${x:,.0f}" if x >= 0 else f"-${-x:,.0f}"


def preset_schedule(
    name: str,
    *,
    flat_rate: float = 20.0,
    brackets: Sequence[float] = (),
    rates: Sequence[float] = (),
) -> TaxSchedule:
    """The named starting schedule (``custom`` takes ``brackets`` and ``rates``)."""
    if name == "us_federal":
        return TaxSchedule(US_FEDERAL_THRESHOLDS, US_FEDERAL_RATES)
    if name == "flat":
        return TaxSchedule((0.0,), (flat_rate,))
    if name == "three_bracket":
        return TaxSchedule(THREE_BRACKET_THRESHOLDS, THREE_BRACKET_RATES)
    if name == "custom":
        if not brackets:
            raise ValueError("scenario.brackets: tax_schedule=custom needs brackets and rates")
        return TaxSchedule(tuple(brackets), tuple(rates))
    raise ValueError(f"scenario.tax_schedule: expected one of {PRESETS}, got {name!r}")


@dataclass(frozen=True)
class UtilityParams:
    """Preferences shared by all workers (see the module docstring)."""

    eta: float = 0.5  # CRRA coefficient η of consumption (1 = log utility)
    frisch: float = 0.5  # Frisch elasticity ε of labour supply
    psi: float = 0.0036  # weight ψ of the disutility of labour
    min_consumption: float = 1.0  # USD/year floor under consumption

    def __post_init__(self) -> None:
        for key in ("eta", "frisch", "min_consumption"):
            if getattr(self, key) <= 0:
                raise ValueError(f"scenario.{key}: must be > 0, got {getattr(self, key)}")
        if self.psi < 0:
            raise ValueError(f"scenario.psi: must be >= 0, got {self.psi}")


def consumption_utility(c: ArrayLike, eta: float) -> NDArray[np.float64]:
    c = np.asarray(c, dtype=np.float64)
    if eta == 1.0:
        return np.log(c)
    return (np.power(c, 1.0 - eta) - 1.0) / (1.0 - eta)


def labour_disutility(hours: ArrayLike, psi: float, frisch: float) -> NDArray[np.float64]:
    power = 1.0 + 1.0 / frisch
    return psi * np.power(np.asarray(hours, dtype=np.float64), power) / power


def utility(c: ArrayLike, hours: ArrayLike, p: UtilityParams) -> NDArray[np.float64]:
    c = np.maximum(np.asarray(c, dtype=np.float64), p.min_consumption)
    return consumption_utility(c, p.eta) - labour_disutility(hours, p.psi, p.frisch)


@dataclass(frozen=True)
class Settlement:
    """One period's outcome for every worker (arrays are in worker order)."""

    hours: NDArray[np.float64]
    pretax: NDArray[np.float64]
    tax: NDArray[np.float64]
    rebate: float
    consumption: NDArray[np.float64]
    utility: NDArray[np.float64]

    @property
    def revenue(self) -> float:
        return float(self.tax.sum())


def settle(
    skills: ArrayLike,
    hours: ArrayLike,
    schedule: TaxSchedule,
    params: UtilityParams,
    weeks_per_year: float,
) -> Settlement:
    """Income, tax, equal rebate, consumption and utility of one period."""
    h = np.asarray(hours, dtype=np.float64)
    pretax = h * np.asarray(skills, dtype=np.float64) * weeks_per_year
    tax = schedule.tax(pretax)
    rebate = float(tax.sum()) / len(h) if len(h) else 0.0
    consumption = pretax - tax + rebate
    return Settlement(h, pretax, tax, rebate, consumption, utility(consumption, h, params))


def best_response(
    skill: float,
    schedule: TaxSchedule,
    rebate: float,
    params: UtilityParams,
    weeks_per_year: float,
    grid: Sequence[int] = HOURS,
) -> int:
    """The hours on ``grid`` that maximise a worker's utility, taking the rebate as given
    (a price-taker: one worker's own tax barely moves the per-capita rebate). Ties go to
    the fewer hours."""
    h = np.asarray(grid, dtype=np.float64)
    z = h * skill * weeks_per_year
    u = utility(z - schedule.tax(z) + rebate, h, params)
    return int(grid[int(np.argmax(u))])


def gini(x: ArrayLike) -> float:
    """Gini coefficient of non-negative amounts (0 = equal; NaN when all are zero).

    Mean absolute difference over twice the mean, over all ordered pairs (i, j),
    computed from the sorted values: ``G = Σ (2i − n − 1) x_(i) / (n Σ x)``.
    """
    v = np.sort(np.maximum(np.asarray(x, dtype=np.float64), 0.0))
    n, total = len(v), float(v.sum())
    if n == 0 or total == 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * v).sum() / (n * total))


def welfare(
    util: ArrayLike, pretax: ArrayLike, income_floor: float
) -> tuple[float, float]:
    """(utilitarian, inverse-income-weighted) social welfare.

    Utilitarian: the mean utility. Inverse-income-weighted: ``Σ ω_i u_i`` with weights
    ``ω_i ∝ 1 / max(z_i, income_floor)`` summing to 1, so poorer workers count more;
    the floor keeps a worker with no income from taking all the weight.
    """
    u = np.asarray(util, dtype=np.float64)
    if len(u) == 0:
        return float("nan"), float("nan")
    inv = 1.0 / np.maximum(np.asarray(pretax, dtype=np.float64), income_floor)
    return float(u.mean()), float((inv / inv.sum()) @ u)
