"""Finding runs, grouping them by what differs, and comparing groups with intervals.

Runs of a sweep differ in a few config keys (``projection.name``, ``backend.model`` …)
and in the seed. Runs are grouped by the keys whose values differ between them, seeds
excepted (seeds are replicates), so ``projection=egocentric,concat`` × 3 seeds gives two
groups of three runs. Each group's episode-level values are summarised by their mean
and a Student-t 95% interval; two groups by the difference of means.

The difference is *paired* where the design allows it. Runs with the same seed draw the
same episode seeds, hence the same personas, situations and per-call seeds (common
random numbers), so the two groups' episodes match one to one on their episode seed and
only the swept factor differs. Then the difference is a paired t-interval over matched
episodes (``scipy.stats.ttest_rel``), which removes the between-episode variance that a
Welch interval (``scipy.stats.ttest_ind(equal_var=False)``) keeps. Where the episodes do
not match one to one, Welch is used; the table's ``test`` column says which.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from simlab.store import is_run_dir
from simlab.store.episodes import MANIFEST as MANIFEST_NAME

#: Config keys that never define a group: replicates, bookkeeping, paths.
IGNORED_KEYS = ("seed", "progress", "backend.cache.path", "backend.model_path",
                "population.path", "hydra", "executor")


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories named by ``paths``: runs themselves, or folders holding runs at
    any depth (a Hydra multirun dir, a sweep). Errors name the path that holds none."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such run directory")
        if is_run_dir(p):
            found.append(p)
            continue
        inner = sorted({m.parent for m in p.rglob(MANIFEST_NAME)
                        if "episodes" not in m.relative_to(p).parts[:-1]})
        if not inner:
            raise FileNotFoundError(f"{p}: not a run directory and holds none "
                                    f"(no {MANIFEST_NAME} below it)")
        found.extend(inner)
    seen: set[Path] = set()
    return [r for r in found if not (r.resolve() in seen or seen.add(r.resolve()))]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config to dotted keys; lists become tuples so values compare."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = _hashable(v)
    return out


def _hashable(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, Mapping):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Config keys whose values differ between runs (seeds and paths excepted). Where a
    config group's choice differs (``scenario.name``, ``backend._target_``,
    ``memory.policy`` …), that one
    key stands for the whole group: an economy run and an opinion run differ in dozens
    of scenario keys, and ``scenario=economy`` says it all."""
    flat = [flatten(c) for c in configs]
    keys = sorted({k for f in flat for k in f})
    ignored = tuple(IGNORED_KEYS)
    differ = [k for k in keys
              if not any(k == i or k.startswith(f"{i}.") for i in ignored)
              and len({repr(f.get(k)) for f in flat}) > 1]
    out: list[str] = []
    for group in dict.fromkeys(k.split(".")[0] for k in differ):
        inner = [k for k in differ if k.split(".")[0] == group]
        choice = next((c for c in (f"{group}.name", f"{group}._target_", f"{group}.policy")
                       if c in inner), None)
        out += [choice] if choice else inner
    return out


def short_key(key: str) -> str:
    """``projection.name`` -> ``projection``, ``memory.policy`` -> ``memory``: a group's
    name is its choice."""
    for suffix in (".name", ".policy"):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def group_labels(configs: Sequence[Mapping[str, Any]],
                 by: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """A group label per run, and the keys used; ``by`` overrides the detected keys."""
    keys = list(by) if by else differing_keys(configs)
    if not keys:
        return ["all"] * len(configs), []
    flat = [flatten(c) for c in configs]
    labels = [",".join(f"{short_key(k)}={_fmt(f.get(k))}" for k in keys) for f in flat]
    return labels, keys


def _fmt(v: Any) -> str:
    return "null" if v is None else str(v)


def t_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values; the interval is NaN for n < 2."""
    x = np.asarray([v for v in values if v is not None], float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def welch(a: Iterable[float], b: Iterable[float],
          level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean(b) - mean(a), low, high, p) with Welch's t; NaNs where undefined."""
    x = np.asarray([v for v in a if v is not None], float)
    y = np.asarray([v for v in b if v is not None], float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if len(x) < 2 or len(y) < 2:
        d = float(y.mean() - x.mean()) if len(x) and len(y) else math.nan
        return d, math.nan, math.nan, math.nan
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    d = float(y.mean() - x.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d, (1.0 if d == 0 else 0.0)
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df) * se)
    p = float(stats.ttest_ind(y, x, equal_var=False).pvalue)
    return d, d - half, d + half, p


#: The analysis metrics that are shares, MRRs or cosines live in [0, 1]; differences of
#: non-negative TF-IDF cosines in [-1, 1]. Intervals are clipped to these ranges (a
#: t-interval of a rare rate would otherwise reach below 0).
UNIT_METRICS = frozenset({"consistency", "distinct_1", "distinct_2", "repetition",
                          "turn_balance", "question_rate", "echo_rate", "failure_rate"})
SIGNED_UNIT_METRICS = frozenset({"drift_level", "drift_rel", "consistency_margin",
                                 "echo_margin"})


def paired(a: Sequence[float | None], b: Sequence[float | None],
           level: float = 0.95) -> tuple[float, float, float, float, int]:
    """(mean(b - a), low, high, p, n) over pairs where both values are finite."""
    x = np.asarray([math.nan if v is None else v for v in a], float)
    y = np.asarray([math.nan if v is None else v for v in b], float)
    ok = np.isfinite(x) & np.isfinite(y)
    d = y[ok] - x[ok]
    n = len(d)
    if n < 2:
        return (float(d.mean()) if n else math.nan), math.nan, math.nan, math.nan, n
    mean, lo, hi, _ = t_interval(d, level)
    if d.std(ddof=1) == 0:
        return mean, mean, mean, (1.0 if mean == 0 else 0.0), n
    return mean, lo, hi, float(stats.ttest_rel(y[ok], x[ok]).pvalue), n


#: Columns that identify an episode's random draws, best first: the analysis episode
#: table's ``episode_seed``, a scenario table's ``seed`` (also the episode seed).
PAIR_KEYS = ("episode_seed", "seed")


def pair_key(episodes: pl.DataFrame, a: str, b: str, group_col: str = "group") -> str | None:
    """The column that matches groups ``a`` and ``b`` one to one, or None.

    Matched means: no missing keys, no key twice within a group, the same key set in
    both, and at least two pairs. Anything less (replicates sharing a seed, a seed run
    in one group only) falls back to an unpaired comparison rather than guess.
    """
    key = next((k for k in PAIR_KEYS if k in episodes.columns), None)
    if key is None:
        return None
    ka = episodes.filter(pl.col(group_col) == a)[key]
    kb = episodes.filter(pl.col(group_col) == b)[key]
    for k in (ka, kb):
        if k.null_count() or k.n_unique() != k.len():
            return None
    if ka.len() < 2 or set(ka.to_list()) != set(kb.to_list()):
        return None
    return key


def metric_range(metric: str) -> tuple[float, float]:
    """The values an analysis metric can take (±inf where unbounded or unknown)."""
    if (metric in UNIT_METRICS or metric.startswith("mrr_k")
            or (metric.startswith(("role_", "judge_")) and metric.endswith("_rate"))):
        return 0.0, 1.0
    if metric in SIGNED_UNIT_METRICS:
        return -1.0, 1.0
    return -math.inf, math.inf


def summarize_groups(episodes: pl.DataFrame, metrics: Sequence[str],
                     group_col: str = "group", clip: bool = True) -> pl.DataFrame:
    """One row per (metric, group): mean, 95% t-interval (with ``clip``, clipped to the
    metric's range, :func:`metric_range`) and n over episodes."""
    rows = []
    groups = episodes[group_col].unique(maintain_order=True).to_list()
    for m in metrics:
        if m not in episodes.columns:
            continue
        for g in groups:
            vals = episodes.filter(pl.col(group_col) == g)[m].cast(pl.Float64).to_list()
            mean, lo, hi, n = t_interval(vals)
            floor, ceiling = metric_range(m) if clip else (-math.inf, math.inf)
            lo, hi = max(lo, floor), min(hi, ceiling)  # NaN (n < 2) stays NaN
            rows.append({"metric": m, "group": g, "mean": mean, "ci_low": lo, "ci_high": hi,
                         "n": n})
    return pl.DataFrame(rows, schema={"metric": pl.String, "group": pl.String,
                                      "mean": pl.Float64, "ci_low": pl.Float64,
                                      "ci_high": pl.Float64, "n": pl.Int64},
                        nan_to_null=True)


def compare_pair(episodes: pl.DataFrame, metrics: Sequence[str], a: str, b: str,
                 group_col: str = "group", pair: bool = True) -> pl.DataFrame:
    """Per metric: ``b - a`` with a 95% interval, p-value, n and the test used: paired
    over episodes matched on their seed where :func:`pair_key` finds a matching (and
    ``pair``), else Welch (n then counts both groups' values)."""
    rows = []
    key = pair_key(episodes, a, b, group_col) if pair else None
    ea = episodes.filter(pl.col(group_col) == a)
    eb = episodes.filter(pl.col(group_col) == b)
    if key is not None:
        eb = ea.select(key).join(eb, on=key, how="left", maintain_order="left")
    for m in metrics:
        if m not in episodes.columns:
            continue
        va, vb = ea[m].cast(pl.Float64).to_list(), eb[m].cast(pl.Float64).to_list()
        if key is not None:
            d, lo, hi, p, n = paired(va, vb)
            test = "paired t"
        else:
            d, lo, hi, p = welch(va, vb)
            n = sum(v is not None and math.isfinite(v) for v in va + vb)
            test = "Welch"
        rows.append({"metric": m, "diff": d, "ci_low": lo, "ci_high": hi, "p": p, "n": n,
                     "test": test})
    return pl.DataFrame(rows, schema={"metric": pl.String, "diff": pl.Float64,
                                      "ci_low": pl.Float64, "ci_high": pl.Float64,
                                      "p": pl.Float64, "n": pl.Int64, "test": pl.String},
                        nan_to_null=True)
