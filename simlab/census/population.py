"""One entry point from a ``population`` config to census personas.

``CensusSpec`` is the census part of the population config as plain Python, so the
sampler can be used from notebooks without Hydra; ``census_population`` does the whole
chain: table → filters → raking → weighted draws → plausibility → traits → text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from simlab.census.render import personas_frame, to_personas
from simlab.census.sampler import CensusFilter, CensusSample, CensusSampler
from simlab.census.table import CensusTable, load_census

if TYPE_CHECKING:
    from simlab.backends.base import Backend
    from simlab.personas.model import Persona


def _mapping(where: str, value: Any) -> Mapping[Any, Any]:
    if not hasattr(value, "items"):
        raise ValueError(f"{where}: expected a mapping, got {value!r}")
    return value


def _ints(where: str, value: Any) -> tuple[int, ...]:
    items = [value] if isinstance(value, str | int) else list(value)
    try:
        return tuple(int(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: codes must be integers, got {list(items)!r}") from None


def _share(where: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: share must be a number, got {value!r}") from None


@dataclass(frozen=True)
class CensusSpec:
    n: int = 24
    path: str | None = None
    id_prefix: str = "census"
    states: tuple[str, ...] = ()
    min_age: int | None = 18
    max_age: int | None = None
    employed: bool | None = None
    where: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    replace: bool = True
    method: str = "systematic"
    strata: str | None = None
    min_per_stratum: int = 0
    marginals: Mapping[str, Mapping[Any, float]] = field(default_factory=dict)
    check_rules: bool = True
    llm_validate: bool = False
    llm_describe: bool = False

    @classmethod
    def from_config(cls, cfg: Any) -> CensusSpec:
        """From a population config (DictConfig, dict or object with attributes)."""
        get = cfg.get if isinstance(cfg, Mapping) or hasattr(cfg, "get") else \
            (lambda k, d=None: getattr(cfg, k, d))
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            value = get(f.name, None)
            if value is None:
                continue
            if f.name == "states":
                value = tuple(str(s) for s in value)
            elif f.name == "where":
                value = {str(k): _ints(f"population.where.{k}", v) for k, v in
                         _mapping("population.where", value).items()}
            elif f.name == "marginals":
                value = {str(k): {c: _share(f"population.marginals.{k}.{c}", x)
                                  for c, x in _mapping(f"population.marginals.{k}", v).items()}
                         for k, v in _mapping("population.marginals", value).items()}
            kwargs[f.name] = value
        return cls(**kwargs)

    @property
    def filter(self) -> CensusFilter:
        return CensusFilter(states=self.states, min_age=self.min_age, max_age=self.max_age,
                            employed=self.employed, where=dict(self.where))


@dataclass
class CensusPopulation:
    """A sampled population: the persona table plus how it was drawn."""

    frame: pl.DataFrame
    sample: CensusSample
    table: CensusTable
    spec: CensusSpec
    llm_rejected: int = 0

    def personas(self) -> list[Persona]:
        return to_personas(self.frame)


@lru_cache(maxsize=4)
def _table(path: str | None) -> CensusTable:
    return load_census(path)


def typed_marginals(table: CensusTable, marginals: Mapping[str, Mapping[Any, float]]
                     ) -> dict[str, dict[Any, float]]:
    """Config keys are strings; ACS code columns need integer category keys."""
    out: dict[str, dict[Any, float]] = {}
    for col, shares in marginals.items():
        integer = col in table.df.columns and table.df.schema[col].is_integer()
        out[col] = {(int(k) if integer else k): float(v) for k, v in shares.items()}
    return out


def census_population(spec: CensusSpec, rng: np.random.Generator,
                      backend: Backend | None = None) -> CensusPopulation:
    """Sample ``spec.n`` personas; with ``llm_validate``/``llm_describe`` the backend
    judges plausibility (rejects are redrawn) and writes checked descriptions."""
    table = _table(spec.path)
    sampler = CensusSampler(table)
    marginals = typed_marginals(table, spec.marginals)
    kwargs = dict(replace=spec.replace, method=spec.method, strata=spec.strata,
                  min_per_stratum=spec.min_per_stratum, marginals=marginals,
                  check_rules=spec.check_rules)
    sample = sampler.sample(spec.n, rng, spec.filter, **kwargs)
    frame = personas_frame(sample.records, table.codebook, rng, id_prefix=spec.id_prefix)
    rejected = 0
    if spec.llm_validate or spec.llm_describe:
        if backend is None:
            raise ValueError("population.llm_validate/llm_describe need a backend")
        from simlab.census.llm import describe, validate_with_llm

        if spec.llm_validate:
            frame, sample, rejected = validate_with_llm(frame, sample, backend, sampler,
                                                        spec, rng, kwargs)
        if spec.llm_describe:
            frame = describe(frame, backend)
    return CensusPopulation(frame=frame, sample=sample, table=table, spec=spec,
                            llm_rejected=rejected)
