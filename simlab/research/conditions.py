"""``when:`` conditions of interventions: a simple test on the scenario's state.

``{when: "mean_stance > 4", kind: broadcast, ...}`` is applied at the start of the first
tick (from ``at`` on, default 0) at which the test holds, and only then. The test reads
:meth:`~simlab.scenario.Scenario.indicators`: the numbers the previous tick left, such as
the opinion scenario's last row of ``ticks``. A condition is one comparison
``<indicator> <op> <number>`` (``op``: ``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``), or
several joined by ``and``. There is nothing else to it (no calls, no randomness), so a
condition is as deterministic as the state it reads, and a missing or NaN value never
holds.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt}
_TEST = re.compile(r"\s*([A-Za-z_]\w*)\s*(<=|>=|==|!=|<|>)\s*"
                   r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")


@dataclass(frozen=True)
class Condition:
    """Comparisons that must all hold; ``text`` is the spec as written."""

    text: str
    tests: tuple[tuple[str, str, float], ...]

    def holds(self, state: Mapping[str, object]) -> bool:
        for name, op, number in self.tests:
            value = state.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    math.isnan(value) or not OPS[op](float(value), number):
                return False
        return True

    def values(self, state: Mapping[str, object]) -> dict[str, object]:
        """The tested indicators' values in ``state`` (recorded when it fires)."""
        return {name: state.get(name) for name, _, _ in self.tests}


def parse_condition(text: object, where: str, indicators: Sequence[str],
                    scenario: str) -> Condition:
    """``text`` as a :class:`Condition` over ``indicators``; errors name ``where``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: must be a test like 'mean_stance > 4', got {text!r}")
    if not indicators:
        raise ValueError(f"{where}: the {scenario} scenario has no indicators a condition "
                         f"could test; use at: alone")
    tests = []
    for part in re.split(r"\s+and\s+", text.strip()):
        m = _TEST.fullmatch(part)
        if m is None:
            raise ValueError(f"{where}: {part.strip()!r} is not <indicator> <op> <number> "
                             f"(op: {', '.join(OPS)}; join tests with 'and')")
        name, op, number = m.groups()
        if name not in indicators:
            raise ValueError(f"{where}: {name!r} is not an indicator of the {scenario} "
                             f"scenario (its indicators: {', '.join(indicators)})")
        tests.append((name, op, float(number)))
    return Condition(text.strip(), tuple(tests))


def last_row(rows: Sequence[Mapping[str, object]], names: Sequence[str]
             ) -> dict[str, object]:
    """``names`` from the last of ``rows`` (a scenario's per-tick table); {} before the
    first tick is recorded."""
    return {k: rows[-1].get(k) for k in names} if rows else {}
