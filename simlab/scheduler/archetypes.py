"""Archetypes, after AgentTorch: one model call per demographic cell, broadcast to members.

On a CPU with the embedded model, asking 1,000 agents every period is slow; asking one
*archetype* per cell (e.g. age band × skill band) and giving every member of the cell
its answer costs one call per cell instead of one per agent. The price is fidelity:
members of a cell all act alike, so within-cell spread (and anything driven by an
individual's own history or neighbours) is lost. ``benchmarks/bench_archetypes.py``
measures both sides of the trade on the embedded model.

Cells are built from persona fields (``age_band``, ``gender``, ``occupation``,
``location``), any persona attribute (census columns such as ``education`` or ``sex``),
or labels the scenario computes (``skill_band``). Each cell's representative is drawn
from the scenario RNG once per episode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from simlab.personas.labels import PERSONA_FIELDS, age_band, persona_label
from simlab.personas.model import Persona

__all__ = ["PERSONA_FIELDS", "Archetypes", "age_band", "build_archetypes", "cell_labels",
           "persona_label", "quantile_bands"]


def cell_labels(
    personas: Mapping[str, Persona],
    by: Sequence[str],
    extra: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, str]:
    """``agent key -> cell label`` such as ``age_band=35-54, skill_band=Q3``."""
    if not by:
        raise ValueError("scenario.archetype_by: name at least one key to group agents by")
    out = {}
    for key, persona in personas.items():
        own = (extra or {}).get(key)
        out[key] = ", ".join(f"{k}={persona_label(persona, k, own)}" for k in by)
    return out


@dataclass
class Archetypes:
    """Agents partitioned into cells, each with one representative who is asked."""

    cell_of: dict[str, str]
    members: dict[str, list[str]] = field(default_factory=dict)
    rep: dict[str, str] = field(default_factory=dict)

    @property
    def representatives(self) -> list[str]:
        """Representatives in order of their cells' first member."""
        return list(self.rep.values())

    def cell_members(self, rep_key: str) -> list[str]:
        return self.members[self.cell_of[rep_key]]

    def is_representative(self, key: str) -> bool:
        return self.rep.get(self.cell_of.get(key, "")) == key


def build_archetypes(labels: Mapping[str, str], rng: np.random.Generator) -> Archetypes:
    """Group agents by label (keeping ``labels`` order) and draw each cell's
    representative uniformly from its members."""
    arch = Archetypes(cell_of=dict(labels))
    for key, cell in labels.items():
        arch.members.setdefault(cell, []).append(key)
    for cell, keys in arch.members.items():
        arch.rep[cell] = keys[int(rng.integers(len(keys)))]
    return arch


def quantile_bands(values: Mapping[str, float], n_bands: int) -> dict[str, str]:
    """``key -> "Q1".."Qn"`` by rank of ``values`` (ties keep input order)."""
    keys = list(values)
    order = np.argsort(np.asarray([values[k] for k in keys], dtype=np.float64), kind="stable")
    bands = {}
    for rank, i in enumerate(order):
        bands[keys[int(i)]] = f"Q{rank * n_bands // len(keys) + 1}"
    return bands
