"""The base of every scenario's config, and the checks its subclasses share.

A scenario's config dataclass is the one home of its defaults: Hydra composes it (the
``scenario`` group), the scenario's constructor takes it, and ``__post_init__`` checks
it, naming the key. Choice fields are :class:`enum.StrEnum`, so a composed value is
checked by Hydra and still compares equal to its plain string in scenario code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

E = TypeVar("E", bound=StrEnum)


@dataclass
class ScenarioConfig:
    """Settings every scenario has. Subclasses add theirs and extend ``__post_init__``."""

    name: str = "scenario"

    def __post_init__(self) -> None:
        for key in ("max_tokens", "planner_max_tokens"):
            value = getattr(self, key, None)
            if value is not None:
                at_least(key, value, 1)
        temperature = getattr(self, "temperature", None)
        if temperature is not None and not 0 <= temperature <= 5:
            raise ValueError(f"scenario.temperature: must be in [0, 5], got {temperature}")
        top_p = getattr(self, "top_p", None)
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"scenario.top_p: must be in (0, 1], got {top_p}")


    def sampling(self) -> dict[str, Any]:
        """The sampling settings this config has, as ``ChatRequest`` keyword arguments."""
        return {k: getattr(self, k) for k in ("max_tokens", "temperature", "top_p")
                if hasattr(self, k)}


def check(ok: bool, key: str, expected: str, value: Any) -> None:
    """Raise ``ValueError('scenario.KEY: expected …, got …')`` unless ``ok``."""
    if not ok:
        raise ValueError(f"scenario.{key}: expected {expected}, got {value!r}")


def at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ValueError(f"scenario.{key}: must be >= {low}, got {value}")


def choice(enum: type[E], value: Any, key: str) -> E:
    """``value`` as a member of ``enum`` (a plain string is accepted)."""
    return enum_value(enum, value, f"scenario.{key}")


def enum_value(enum: type[E], value: Any, full_key: str) -> E:
    """``value`` as a member of ``enum``, or a ``ValueError`` naming ``full_key``."""
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(m.value for m in enum)
        raise ValueError(f"{full_key}: expected one of {known}, got {value!r}") from None


def choices(enum: type[E], values: Iterable[Any], key: str) -> list[E]:
    return [choice(enum, v, f"{key}[{i}]") for i, v in enumerate(values)]
