"""How faithful is a sampled population? Marginals and joints against the census.

For each attribute the sampled share of every category is set against the census
weighted share *under the same filters*, and summarised by the total variation distance
``TVD = ½ Σ_c |p_sample(c) − p_census(c)|`` (0 = identical, 1 = disjoint). Joint checks
(education × income, age × marital status …) use the same distance over the cross
categories, so a sampler that matched marginals but broke correlations would show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from simlab.census.recode import GROUPED, with_groups

ATTRIBUTES = ("age_group", "sex", "race", "hispanic_origin", "education", "marital_status",
              "employment_status", "income_bracket")
JOINTS = (("education", "income_bracket"), ("age_group", "marital_status"),
          ("sex", "employment_status"), ("race", "education"))


def _shares(df: pl.DataFrame, cols: Sequence[str], weight: str | None) -> pl.DataFrame:
    keys = [f"g_{c}" if c in GROUPED else c for c in cols]
    w = pl.col(weight).sum() if weight else pl.len().cast(pl.Float64)
    out = df.group_by(keys).agg(w.alias("w"))
    return out.with_columns((pl.col("w") / pl.col("w").sum()).alias("share")).drop("w") \
        .rename(dict(zip(keys, cols, strict=True)))


def compare(sample: pl.DataFrame, census: pl.DataFrame, cols: Sequence[str],
            census_weight: str = "WEIGHT") -> pl.DataFrame:
    """Per category of ``cols``: sampled share, census share and their difference.

    ``sample`` is unweighted (a self-weighting draw); ``census`` rows carry weights.
    """
    names = tuple(c for c in cols if c in GROUPED)
    s = _shares(with_groups(sample, names), cols, None).rename({"share": "sample_share"})
    c = _shares(with_groups(census, names), cols, census_weight) \
        .rename({"share": "census_share"})
    joined = c.join(s, on=list(cols), how="full", coalesce=True).fill_null(0.0)
    return joined.with_columns(
        (pl.col("sample_share") - pl.col("census_share")).alias("diff")).sort(list(cols))


def tvd(table: pl.DataFrame) -> float:
    return float(0.5 * table["diff"].abs().sum())


def fidelity(sample: pl.DataFrame, census: pl.DataFrame,
             attributes: Sequence[str] = ATTRIBUTES,
             joints: Sequence[tuple[str, str]] = JOINTS) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(summary, detail): TVD per attribute/joint, and per-category shares."""
    summary, detail = [], []
    for attr in attributes:
        t = compare(sample, census, [attr])
        summary.append({"check": attr, "kind": "marginal", "tvd": tvd(t),
                        "categories": t.height})
        detail.append(t.rename({attr: "category"}).with_columns(
            pl.col("category").cast(pl.String), pl.lit(attr).alias("attribute")))
    for a, b in joints:
        t = compare(sample, census, [a, b])
        summary.append({"check": f"{a} × {b}", "kind": "joint", "tvd": tvd(t),
                        "categories": t.height})
    cols = ["attribute", "category", "sample_share", "census_share", "diff"]
    return pl.DataFrame(summary), pl.concat([d.select(cols) for d in detail])


def plot(detail: pl.DataFrame, path: Path) -> None:
    """Sampled vs census share per category, one panel per attribute."""
    from matplotlib.figure import Figure  # no pyplot: the user's backend is left alone

    attrs = detail["attribute"].unique(maintain_order=True).to_list()
    cols = 2
    rows = (len(attrs) + cols - 1) // cols
    fig = Figure(figsize=(12, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, attr in zip(axes.flat, attrs, strict=False):
        d = detail.filter(pl.col("attribute") == attr)
        y = range(d.height)
        ax.barh([i + 0.2 for i in y], d["census_share"], height=0.4, label="census")
        ax.barh([i - 0.2 for i in y], d["sample_share"], height=0.4, label="sample")
        ax.set_yticks(list(y), d["category"].to_list(), fontsize=7)
        ax.set_title(attr, fontsize=9)
        ax.invert_yaxis()
    for ax in list(axes.flat)[len(attrs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(summary: pl.DataFrame, detail: pl.DataFrame, meta: dict) -> str:
    lines = ["# Population fidelity report", ""]
    lines += [f"- **{k}**: {v}" for k, v in meta.items()]
    lines += ["", "## Total variation distance to the census (same filters)", "",
              "| check | kind | TVD | categories |", "|---|---|---:|---:|"]
    lines += [f"| {r['check']} | {r['kind']} | {r['tvd']:.4f} | {r['categories']} |"
              for r in summary.iter_rows(named=True)]
    lines += ["", "TVD = ½ Σ |sample share − census share| over categories.", "",
              "## Shares by category", "", "![marginals](fidelity.png)", "",
              "| attribute | category | sample | census | diff |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['attribute']} | {r['category']} | {r['sample_share']:.4f} | "
              f"{r['census_share']:.4f} | {r['diff']:+.4f} |"
              for r in detail.iter_rows(named=True)]
    return "\n".join(lines) + "\n"


def raking_check(sample: pl.DataFrame, marginals: dict) -> pl.DataFrame:
    """Sampled share against each raking target (should agree within ~1/n)."""
    rows = []
    for attr, targets in marginals.items():
        grouped = attr in GROUPED
        df = with_groups(sample, (attr,)) if grouped else sample
        col = f"g_{attr}" if grouped else attr
        shares = dict(df.group_by(col).agg(pl.len() / df.height).iter_rows())
        for cat, target in targets.items():
            got = shares.get(cat, 0.0)
            rows.append({"attribute": attr, "category": str(cat), "target": float(target),
                         "sample_share": got, "diff": got - float(target)})
    return pl.DataFrame(rows)
