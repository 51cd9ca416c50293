"""The report's figures (matplotlib, PNG): groups side by side, with 95% t-intervals as
error bars or bands.

Figures are :class:`matplotlib.figure.Figure` objects saved directly (Agg renders PNG by
itself): pyplot is never imported and the process's matplotlib backend is never switched,
so importing or calling this module leaves a notebook's or GUI's plotting alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib import rcParams
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from simlab.analysis.compare import metric_range, t_interval


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of its own with one panel (not registered with pyplot)."""
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _grid(n: int, height: float) -> tuple[Figure, list[Axes]]:
    """Up to four small panels a row for ``n`` metrics; spare panels hidden."""
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.2 * cols, height * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)  # nothing to close: no pyplot figure manager holds it
    return path


def headline_bars(summary: pl.DataFrame, metrics: Sequence[str], path: Path) -> Path | None:
    """One small bar chart per metric: groups' means with 95% CI error bars."""
    metrics = [m for m in metrics if m in set(summary["metric"])]
    if not metrics:
        return None
    fig, axes = _grid(len(metrics), 2.6)
    groups = summary["group"].unique(maintain_order=True).to_list()
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, m in zip(axes, metrics, strict=True):
        s = summary.filter(pl.col("metric") == m)
        mean = s["mean"].fill_null(np.nan).to_numpy()
        lo = s["ci_low"].fill_null(np.nan).to_numpy()
        hi = s["ci_high"].fill_null(np.nan).to_numpy()
        # clipped: a zero-width interval can sit an ulp off its mean
        err = np.clip(np.nan_to_num(np.vstack([mean - lo, hi - mean]), nan=0.0), 0, None)
        x = np.arange(len(s))
        ax.bar(x, np.nan_to_num(mean), yerr=err, capsize=3,
               color=[colors[groups.index(g) % len(colors)] for g in s["group"]])
        ax.set_xticks(x, [str(g) for g in s["group"]], rotation=20, ha="right", fontsize=7)
        ax.set_title(m, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path)


def _band(ax: Axes, t: pl.DataFrame, value: str, x: str, group_col: str,
          clip: bool = False) -> None:
    """Per group: the mean of ``value`` at each ``x`` and its 95% t-interval band, with
    ``clip`` clipped to the metric's range (:func:`metric_range`)."""
    low, high = metric_range(value) if clip else (-np.inf, np.inf)
    t = t.filter(pl.col(value).is_not_null())
    for g in t[group_col].unique(maintain_order=True).to_list():
        sub = t.filter(pl.col(group_col) == g).group_by(x).agg(pl.col(value)).sort(x)
        stats = [t_interval(v) for v in sub[value].to_list()]
        ax.plot(sub[x].to_numpy(), [s[0] for s in stats], marker="o", ms=3, label=str(g))
        ax.fill_between(sub[x].to_numpy(), np.clip([s[1] for s in stats], low, high),
                        np.clip([s[2] for s in stats], low, high), alpha=0.2)


def by_turn(turns: pl.DataFrame, value: str, x: str, path: Path, title: str,
            ylabel: str) -> Path | None:
    """Mean of ``value`` by ``x`` per group, with a 95% CI band."""
    if turns.filter(pl.col(value).is_not_null()).is_empty():
        return None
    fig, ax = _figure(6, 3.4)
    _band(ax, turns, value, x, "group", clip=True)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def series_grid(df: pl.DataFrame, metrics: Sequence[str], x: str, group_col: str,
                path: Path) -> Path | None:
    """Small multiples: each metric over ``x`` per group, mean with a 95% band."""
    metrics = [m for m in metrics if df[m].drop_nulls().len()]
    if not metrics:
        return None
    fig, axes = _grid(len(metrics), 2.5)
    for ax, m in zip(axes, metrics, strict=True):
        _band(ax, df, m, x, group_col)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(m, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6)
    return _save(fig, path)


def mrr_curve(summary: pl.DataFrame, path: Path) -> Path | None:
    """MRR against candidate-pool size per group (chance ≈ H_K / K for reference)."""
    s = summary.filter(pl.col("metric").str.starts_with("mrr_k"))
    if s.is_empty():
        return None
    s = s.with_columns(k=pl.col("metric").str.slice(5).cast(pl.Int64)).sort("k")
    fig, ax = _figure(5, 3.2)
    for g in s["group"].unique(maintain_order=True).to_list():
        sub = s.filter(pl.col("group") == g)
        ax.errorbar(sub["k"], sub["mean"], yerr=np.nan_to_num(np.vstack([
            (sub["mean"] - sub["ci_low"]).fill_null(0).to_numpy(),
            (sub["ci_high"] - sub["mean"]).fill_null(0).to_numpy()])),
            marker="o", ms=3, capsize=3, label=str(g))
    ks = np.array(sorted(set(s["k"].to_list())))
    ax.plot(ks, [sum(1 / i for i in range(1, k + 1)) / k for k in ks], "k--", lw=0.8,
            label="chance")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("candidate pool size K")
    ax.set_ylabel("MRR@K")
    ax.set_title("Adherence: persona retrieval", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def length_hist(turns: pl.DataFrame, reference: np.ndarray | None, path: Path) -> Path | None:
    if turns.is_empty():
        return None
    fig, ax = _figure(5, 3.2)
    top = int(max(turns["n_words"].max() or 1, reference.max() if reference is not None
                  and len(reference) else 1))
    bins = np.linspace(0, top + 1, min(40, top + 2))
    for g in turns["group"].unique(maintain_order=True).to_list():
        ax.hist(turns.filter(pl.col("group") == g)["n_words"].to_numpy(), bins=bins,
                density=True, histtype="step", label=str(g))
    if reference is not None and len(reference):
        ax.hist(reference, bins=bins, density=True, histtype="stepfilled", alpha=0.25,
                color="grey", label="reference")
    ax.set_xlabel("words per turn")
    ax.set_ylabel("density")
    ax.set_title("Turn lengths", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)
