"""Auction data: the items for sale, bidder budgets, and private values.

Kept apart from the auction model so the economic assumptions (how a budget follows from
income, how a private value follows from a house and a persona) sit in one short, testable
place that the docs can point at.

Value model (IPV with noisy signals, after HARBOR's houses):

    true_value[i, h] = value[h] * prod(preferences_i[f] for f in features[h]) * exp(taste_sd * z)
    estimate[i, h]   = true_value[i, h] * exp(value_noise * z')          (z, z' ~ N(0, 1))

``value`` is the house's hidden market value, ``preferences`` a persona's multipliers per
house feature (missing features count 1.0), ``z`` an idiosyncratic taste draw; bidders are
told only their ``estimate``. Both draws come from the episode RNG, so a seed fixes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simlab.personas.model import Persona

DEFAULT_ITEMS_PATH = Path(__file__).resolve().parent / "data" / "houses.yaml"


class Item(BaseModel):
    """One lot: a house with public attributes and a hidden market value."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", min_length=1, max_length=64)
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    value: int = Field(gt=0)  # hidden market value, whole dollars
    start_price: int = Field(gt=0)  # opening price (English) / reserve (sealed)
    increment: int | None = Field(default=None, gt=0)  # None: the scenario's min_increment
    features: tuple[str, ...] = ()
    bedrooms: int | None = Field(default=None, ge=0)
    bathrooms: int | None = Field(default=None, ge=0)
    sqft: int | None = Field(default=None, gt=0)
    neighborhood: str | None = None
    year_built: int | None = None

    def blurb(self) -> str:
        """The public description read out by the auctioneer."""
        facts = []
        if self.bedrooms is not None:
            facts.append(f"{self.bedrooms} bed")
        if self.bathrooms is not None:
            facts.append(f"{self.bathrooms} bath")
        if self.sqft is not None:
            facts.append(f"{self.sqft:,} sq ft")
        if self.neighborhood:
            facts.append(f"in {self.neighborhood}")
        if self.year_built:
            facts.append(f"built {self.year_built}")
        tail = f" ({', '.join(facts)})" if facts else ""
        return f"{self.name}: {self.description}{tail}"


def parse_items(records: Any, where: str) -> list[Item]:
    """Validate item records; every problem names ``where``, the record and the field."""
    if isinstance(records, Mapping) and "items" in records:
        records = records["items"]
    if not isinstance(records, list) or not records:
        raise ValueError(f"{where}: expected a non-empty list of items (or {{items: [...]}})")
    items, problems, seen = [], [], set()
    for i, rec in enumerate(records):
        label = f"{where}: item {i}"
        if isinstance(rec, Mapping) and rec.get("id"):
            label += f" ({rec['id']})"
        try:
            item = Item.model_validate(dict(rec) if isinstance(rec, Mapping) else rec)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "record"
                problems.append(f"{label}: field {field!r}: {err['msg']}")
            continue
        if item.id in seen:
            problems.append(f"{label}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if problems:
        raise ValueError("\n".join(problems))
    return items


def load_items(path: str | Path | None = None) -> list[Item]:
    """Items from a YAML file (default: the bundled ``scenarios/data/houses.yaml``)."""
    path = Path(path) if path else DEFAULT_ITEMS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"scenario.items_path: no such file {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from exc
    return parse_items(data, str(path))


def budget_of(persona: Persona, income_multiple: float) -> int:
    """A bidder's total budget in whole dollars.

    ``attributes.budget_usd`` when the persona has one (persona sets such as
    ``personas/bidders.yaml``); otherwise derived from census income:

        budget = max(income_usd, 0) * income_multiple

    with ``income_multiple`` 5 by default: a mortgage of about 4x annual income (a common
    lender cap) plus savings for a deposit of about 1x income. Zero or negative income
    gives a budget of 0: that bidder can only drop out.
    """
    attrs = persona.attributes
    where = f"persona {persona.id!r}"
    if attrs.get("budget_usd") is not None:
        budget = attrs["budget_usd"]
        if isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0:
            raise ValueError(f"{where}: attributes.budget_usd must be a number >= 0, "
                             f"got {budget!r}")
        return int(budget)
    income = attrs.get("income_usd")
    if income is None:
        raise ValueError(
            f"{where}: an auction bidder needs attributes.budget_usd or attributes.income_usd "
            "(use population=bidders, population=census, or a persona file with budgets)"
        )
    if isinstance(income, bool) or not isinstance(income, int | float):
        raise ValueError(f"{where}: attributes.income_usd must be a number, got {income!r}")
    return round(max(float(income), 0.0) * income_multiple)


def preferences_of(persona: Persona) -> dict[str, float]:
    """``attributes.preferences``: feature -> value multiplier (validated)."""
    prefs = persona.attributes.get("preferences") or {}
    if not isinstance(prefs, Mapping):
        raise ValueError(f"persona {persona.id!r}: attributes.preferences must be a mapping "
                         f"of feature -> multiplier, got {type(prefs).__name__}")
    out = {}
    for feature, mult in prefs.items():
        if isinstance(mult, bool) or not isinstance(mult, int | float) or mult <= 0:
            raise ValueError(f"persona {persona.id!r}: attributes.preferences.{feature} must "
                             f"be a positive number, got {mult!r}")
        out[str(feature)] = float(mult)
    return out


def draw_values(
    items: Sequence[Item],
    personas: Sequence[Persona],
    rng: np.random.Generator,
    *,
    taste_sd: float,
    value_noise: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``(true_values, estimates)``, each ``[bidder, item]`` in whole dollars.

    Both normal draws are made even when their spread is 0, so switching noise on or off
    does not shift the rest of the episode's random stream.
    """
    shape = (len(personas), len(items))
    taste = rng.normal(size=shape)
    noise = rng.normal(size=shape)
    true = np.zeros(shape, dtype=np.int64)
    est = np.zeros(shape, dtype=np.int64)
    for i, persona in enumerate(personas):
        prefs = preferences_of(persona)
        for h, item in enumerate(items):
            mult = math.prod(prefs.get(f, 1.0) for f in item.features)
            t = item.value * mult * math.exp(taste_sd * taste[i, h])
            true[i, h] = round(t)
            # Bidders think in round numbers: estimates are to the nearest $1,000.
            est[i, h] = round(t * math.exp(value_noise * noise[i, h]) / 1000) * 1000
    return true, est
