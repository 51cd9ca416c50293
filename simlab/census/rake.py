"""Raking (iterative proportional fitting) of record weights to target marginals.

"A population like county X": the user gives the shares they know (sex, age group,
education …) and the weights are adjusted, one margin at a time, until every margin
matches. Raking keeps the records (and so the joint structure within each margin's
cells) and changes only how many people each stands for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl


class RakingError(ValueError):
    """Targets that cannot be met; the message names the column and category."""


def _target_vector(column: str, values: np.ndarray, target: Mapping[Any, float],
                   present: set) -> tuple[np.ndarray, np.ndarray]:
    cats = list(target)
    shares = np.array([float(target[c]) for c in cats])
    if (shares < 0).any() or not np.isfinite(shares).all():
        raise RakingError(f"marginals.{column}: shares must be finite and >= 0")
    total = shares.sum()
    if abs(total - 1.0) > 1e-6:
        raise RakingError(f"marginals.{column}: shares sum to {total:.6f}, not 1")
    index = {c: i for i, c in enumerate(cats)}
    extra = sorted(present - set(cats), key=str)
    if extra:
        raise RakingError(f"marginals.{column}: categories {extra} are in the population "
                          "but have no target share (give them one, possibly 0, or filter)")
    empty = [c for c in cats if c not in present and target[c] > 0]
    if empty:
        raise RakingError(f"marginals.{column}: no records in categories {empty} "
                          "(after filters), so their share cannot be met")
    codes = np.array([index[v] for v in values], dtype=np.int64)
    return codes, shares


def rake(df: pl.DataFrame, weights: np.ndarray, marginals: Mapping[str, Mapping[Any, float]],
         *, tol: float = 1e-10, max_iter: int = 500) -> np.ndarray:
    """Weights adjusted so each ``marginals[column]`` share is met; total preserved.

    Converged when every margin is within ``tol`` (absolute share) of its target; raises
    :class:`RakingError` if the margins are incompatible (IPF does not converge).
    """
    w = np.asarray(weights, dtype=np.float64).copy()
    total = w.sum()
    dims = []
    for column, target in marginals.items():
        if column not in df.columns:
            raise RakingError(f"marginals.{column}: no such attribute "
                              f"(choose from {sorted(df.columns)})")
        col = df[column]
        if col.null_count():
            raise RakingError(f"marginals.{column}: {col.null_count()} records have no value")
        uniq, inverse = np.unique(col.to_numpy(), return_inverse=True)
        present = set(uniq.tolist())
        # Map via the unique values once (fast for a million rows).
        cat_codes, shares = _target_vector(column, uniq, target, present)
        dims.append((cat_codes[inverse], shares * total, len(shares)))
    for _ in range(max_iter):
        worst = 0.0
        for codes, goal, k in dims:
            current = np.bincount(codes, weights=w, minlength=k)
            ratio = np.divide(goal, current, out=np.zeros(k), where=current > 0)
            w *= ratio[codes]
        for codes, goal, k in dims:
            current = np.bincount(codes, weights=w, minlength=k)
            worst = max(worst, float(np.abs(current - goal).max() / total))
        if worst < tol:
            return w
    raise RakingError(f"raking did not converge in {max_iter} iterations (worst margin off "
                      f"by {worst:.2e}); the marginals may be mutually inconsistent")
