"""``Usage``: what producing something cost (tokens, latency, provider price, attempts).

One value type for the field group that a reply, an agent's act (all its re-asks), an
event and a run each carry, so adding a counter means adding it here. The event table
stores it flat (:meth:`Usage.columns`): Parquet columns, not a nested struct.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0  # wall clock, summed over attempts
    cost_usd: float = 0.0  # provider price where known (litellm), else 0
    attempts: int = 0  # model calls made (retries and re-asks included)

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in USAGE_FIELDS)

    def columns(self) -> dict[str, Any]:
        """The fields by name, as the events table stores them."""
        return asdict(self)

    @classmethod
    def of(cls, row: Mapping[str, Any] | Any) -> Usage:
        """The usage recorded on ``row`` (a mapping, or an object with the fields)."""
        get = row.get if isinstance(row, Mapping) else (lambda k, d: getattr(row, k, d))
        return cls(**{f: get(f, 0) or 0 for f in USAGE_FIELDS})

    @classmethod
    def total(cls, items: Iterable[Usage]) -> Usage:
        out = cls()
        for u in items:
            out = out + u
        return out


USAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Usage))
