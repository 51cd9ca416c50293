"""Small SVG charts drawn on the server, for the scenario views of the Episode page.

The pages ship no charting library: a chart is a few dozen SVG elements, built here with
every label escaped (names and item titles come from the store, not from simlab).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

import polars as pl

W, H, PAD = 440, 220, 64
COLOURS = ("#1d3557", "#e63946", "#2a9d8f", "#f4a261", "#6a4c93", "#8d99ae", "#588157")


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], title: str,
               x_label: str, y_label: str, levels: Mapping[str, float] | None = None,
               points: bool = False) -> str:
    """Lines (or points) per series, and dashed horizontal ``levels`` (e.g. true values);
    one colour per series, the same for its level. Points that are not finite numbers
    (a Gini of all-zero incomes is NaN) are left out."""
    series = {k: [(x, y) for x, y in pts if _finite(x) and _finite(y)]
              for k, pts in series.items()}
    levels = {k: v for k, v in (levels or {}).items() if _finite(v)}
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts] + list((levels or {}).values())
    if not xs:
        return ""
    sx = _scale(min(xs), max(xs), PAD, W - 10)
    sy = _scale(min(ys), max(ys), H - PAD, 20)
    out = [f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
           f'aria-label="{escape(title)}"><text x="{PAD}" y="14" font-size="12" '
           f'font-weight="600">{escape(title)}</text>',
           f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#999"/>',
           f'<line x1="{PAD}" y1="20" x2="{PAD}" y2="{H - PAD}" stroke="#999"/>',
           f'<text x="{W / 2}" y="{H - 8}" font-size="11" text-anchor="middle">'
           f'{escape(x_label)}</text>',
           f'<text x="10" y="{H / 2}" font-size="11" transform="rotate(-90 10 {H / 2})" '
           f'text-anchor="middle">{escape(y_label)}</text>',
           f'<text x="{PAD - 4}" y="{H - PAD}" font-size="10" text-anchor="end">'
           f'{_num(min(ys))}</text>',
           f'<text x="{PAD - 4}" y="24" font-size="10" text-anchor="end">{_num(max(ys))}</text>']
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        coords = [(sx(x), sy(y)) for x, y in sorted(pts)]
        if points:  # hovering a dot names its series and value
            out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{colour}">'
                    f'<title>{escape(name)}: {_num(y)} at {_num(x)}</title></circle>'
                    for x, y in sorted(pts)]
        else:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"/>')
        if levels and name in levels:
            y = sy(levels[name])
            out.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - 10}" y2="{y:.1f}" '
                       f'stroke="{colour}" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{W - 12}" y="{32 + 13 * i}" font-size="10" fill="{colour}" '
                   f'text-anchor="end" class="legend">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def _bound(v: object) -> str:
    return "n/a" if v is None else f"{float(v):.4g}"  # type: ignore[arg-type]


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def economy_charts(ticks: pl.DataFrame) -> list[str]:
    """Labour, post-tax Gini and utilitarian welfare per tick, one line per planner."""
    need = {"tick", "planner", "labour_supply", "gini_posttax", "welfare_utilitarian"}
    if ticks.is_empty() or not need <= set(ticks.columns):
        return []
    charts = []
    for col, title in (("labour_supply", "Labour supply"), ("gini_posttax", "Gini (post-tax)"),
                       ("welfare_utilitarian", "Welfare (utilitarian)")):
        series = {str(p): list(zip(g["tick"].to_list(), g[col].to_list(), strict=True))
                  for (p,), g in ticks.partition_by("planner", as_dict=True).items()}
        charts.append(line_chart(series, title, "tick", col))
    return charts


def auction_charts(bids: pl.DataFrame, items: pl.DataFrame) -> list[str]:
    """Per lot: each bidder's valid bids by round, against its true value (dashed)."""
    need = {"lot", "round", "bidder", "amount", "valid", "true_value"}
    if bids.is_empty() or not need <= set(bids.columns):
        return []
    names = dict(zip(items["lot"].to_list(), items["item_name"].to_list(), strict=True)) \
        if {"lot", "item_name"} <= set(items.columns) else {}
    charts = []
    valid = bids.filter(pl.col("valid") & pl.col("amount").is_not_null())
    for (lot,), rows in sorted(valid.partition_by("lot", as_dict=True).items()):
        series = {str(b): list(zip(g["round"].to_list(), g["amount"].to_list(), strict=True))
                  for (b,), g in rows.partition_by("bidder", as_dict=True).items()}
        levels = {str(b): float(g["true_value"][0])
                  for (b,), g in rows.partition_by("bidder", as_dict=True).items()}
        charts.append(line_chart(series, f"Lot {lot}: {names.get(lot, '')}", "round",
                                 "bid (dashed: true value)", levels=levels, points=True))
    return charts


def ci_chart(metric: str, rows: Sequence[Mapping[str, object]]) -> str:
    """One metric's groups: the mean as a dot and its 95% interval as a whisker, one
    row per group (the sweep's differing keys name the groups)."""
    rows = [r for r in rows if r.get("mean") is not None]
    if not rows:
        return ""
    values = [float(v) for r in rows for v in (r["mean"], r.get("ci_low"), r.get("ci_high"))
              if v is not None]
    height = 34 + 26 * len(rows)
    left = 190
    sx = _scale(min(values), max(values), left, W - 20)
    out = [f'<svg class="chart ci" viewBox="0 0 {W} {height}" width="{W}" height="{height}" '
           f'role="img" aria-label="{escape(metric)}"><text x="8" y="14" font-size="12" '
           f'font-weight="600">{escape(metric)} (mean, 95% CI)</text>']
    for i, r in enumerate(rows):
        y = 34 + 26 * i
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<text x="8" y="{y + 4}" font-size="11">{escape(str(r["group"])[:40])}'
                   f'</text>')
        lo, hi = r.get("ci_low"), r.get("ci_high")
        if lo is not None and hi is not None:
            out.append(f'<line x1="{sx(float(lo)):.1f}" y1="{y}" x2="{sx(float(hi)):.1f}" '
                       f'y2="{y}" stroke="{colour}" stroke-width="2" class="whisker"/>')
        out.append(f'<circle cx="{sx(float(r["mean"])):.1f}" cy="{y}" r="4.5" '
                   f'fill="{colour}" data-mean="{float(r["mean"]):.6g}"><title>'
                   f'{escape(str(r["group"]))}: mean {float(r["mean"]):.4g}, 95% CI '
                   f'[{_bound(r.get("ci_low"))}, {_bound(r.get("ci_high"))}], '
                   f'n={r.get("n")}</title></circle>')
        out.append(f'<text x="{W - 8}" y="{y + 4}" font-size="10" text-anchor="end">'
                   f'{_num(float(r["mean"]))} (n={r.get("n")})</text>')
    out.append("</svg>")
    return "".join(out)


def drift_chart(turns: pl.DataFrame) -> str:
    """Mean persona drift (``drift_rel``) by the agent's turn number, one line per group:
    does an agent slide away from its persona as the conversation goes on?"""
    if turns.is_empty() or not {"agent_turn", "drift_rel"} <= set(turns.columns):
        return ""
    by = "group" if "group" in turns.columns else None
    means = (turns.drop_nulls("drift_rel")
             .group_by([*([by] if by else []), "agent_turn"])
             .agg(pl.col("drift_rel").mean()).sort("agent_turn"))
    parts = means.partition_by(by, as_dict=True) if by else {("all",): means}
    series = {str(g): list(zip(d["agent_turn"].to_list(), d["drift_rel"].to_list(),
                               strict=True)) for (g,), d in parts.items()}
    return line_chart(series, "Persona drift by turn (mean drift_rel)", "agent turn",
                      "drift_rel")
