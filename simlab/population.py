"""Build the run's population of personas from its ``population`` config."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simlab.personas.loader import PERSONA_DATA_DIR
from simlab.personas.model import Persona

if TYPE_CHECKING:
    from simlab.backends.base import Backend


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def _resolve(path: str) -> Path:
    """A relative persona path is looked up from the working directory first, then from
    the project root, so bundled sets (``personas/bidders.yaml``) work from anywhere."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    bundled = PERSONA_DATA_DIR.parent / p
    return bundled if bundled.exists() else p


def build_population(cfg: Any, rng: np.random.Generator,
                     backend: Backend | None = None) -> list[Persona]:
    """Personas for the run: a curated set, the user's persona file, sampled ones, or
    people drawn from census microdata (``kind=census``, see :mod:`simlab.census`).

    ``rng`` is the run's RNG; only sampling draws from it, so curated runs consume none.
    ``backend`` serves the census LLM validator/describer when those are switched on.
    """
    from simlab.personas import PersonaSampler, default_persona_path, load_personas

    kind = _value(cfg.kind)
    if kind == "curated":
        return load_personas(cfg.path or default_persona_path())
    if kind == "file":
        if not cfg.path:
            raise ValueError("population.path: population=file needs a persona file path")
        return load_personas(_resolve(cfg.path))
    if kind == "sampled":
        if cfg.n < 1:
            raise ValueError(f"population.n: need at least 1 persona, got {cfg.n}")
        return PersonaSampler(id_prefix=cfg.id_prefix).sample(cfg.n, rng)
    if kind == "census":
        from simlab.census.population import CensusSpec, census_population

        return census_population(CensusSpec.from_config(cfg), rng, backend).personas()
    raise ValueError(f"population.kind: unknown kind {kind!r}")
