"""The analysis report as a list of blocks, rendered to Markdown and to HTML.

Building blocks once and rendering twice keeps the two formats identical in content;
tables are polars frames, figures are PNG files referenced by relative path.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl


@dataclass
class Report:
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)
    images: bool = True  # False: figures are neither drawn nor referenced

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def table(self, df: pl.DataFrame, max_rows: int = 40) -> None:
        self.blocks.append(("table", (df, max_rows)))

    def figure(self, draw: Callable[..., Path | None], *args: object, caption: str,
               root: Path) -> None:
        """Draw a figure with ``draw(*args)`` (skipped when images are off) and add it."""
        if self.images:
            self.image(draw(*args), caption, root)

    def image(self, path: Path | None, caption: str, root: Path) -> None:
        if path is not None:
            self.blocks.append(("image", (path.relative_to(root).as_posix(), caption)))

    # ------------------------------------------------------------ rendering
    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, val in self.blocks:
            if kind == "heading":
                level, text = val  # type: ignore[misc]
                out += ["#" * level + " " + text, ""]
            elif kind == "para":
                out += [str(val), ""]
            elif kind == "table":
                df, max_rows = val  # type: ignore[misc]
                out += [_md_table(df, max_rows), ""]
            elif kind == "image":
                src, cap = val  # type: ignore[misc]
                out += [f"![{cap}]({src})", "", f"*{cap}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, val in self.blocks:
            if kind == "heading":
                level, text = val  # type: ignore[misc]
                body.append(f"<h{level}>{html.escape(text)}</h{level}>")
            elif kind == "para":
                body.append(f"<p>{html.escape(str(val))}</p>")
            elif kind == "table":
                df, max_rows = val  # type: ignore[misc]
                body.append(_html_table(df, max_rows))
            elif kind == "image":
                src, cap = val  # type: ignore[misc]
                body.append(f'<figure><img src="{html.escape(src)}" alt="{html.escape(cap)}">'
                            f"<figcaption>{html.escape(cap)}</figcaption></figure>")
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
                 "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
                 "th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}")
        return ("<!doctype html><html><head><meta charset='utf-8'><title>"
                f"{html.escape(self.title)}</title><style>{style}</style></head><body>"
                + "\n".join(body) + "</body></html>\n")


def fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def _rows(df: pl.DataFrame, max_rows: int) -> tuple[list[str], list[list[str]], int]:
    head = df.head(max_rows)
    return head.columns, [[fmt(v) for v in r] for r in head.iter_rows()], df.height - head.height


def _md_table(df: pl.DataFrame, max_rows: int) -> str:
    if df.width == 0:
        return "(empty)"
    cols, rows, more = _rows(df, max_rows)
    esc = [c.replace("|", "\\|") for c in cols]
    lines = ["| " + " | ".join(esc) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in r) + " |"
              for r in rows]
    if more:
        lines.append(f"\n({more} more rows in the Parquet file)")
    return "\n".join(lines)


def _html_table(df: pl.DataFrame, max_rows: int) -> str:
    if df.width == 0:
        return "<p>(empty)</p>"
    cols, rows, more = _rows(df, max_rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    tail = f"<p>({more} more rows in the Parquet file)</p>" if more else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"


def with_ci(summary: pl.DataFrame) -> pl.DataFrame:
    """Wide table: one row per metric, one ``mean [low, high] (n)`` cell per group."""
    if summary.is_empty():
        return summary
    cell = summary.with_columns(cell=pl.struct("mean", "ci_low", "ci_high", "n")
                                .map_elements(lambda s: f"{fmt(s['mean'])} "
                                              f"[{fmt(s['ci_low'])}, {fmt(s['ci_high'])}]"
                                              f" (n={s['n']})", return_dtype=pl.String))
    return cell.pivot(on="group", index="metric", values="cell", maintain_order=True)


def add_comparison(rep: Report, df: pl.DataFrame, metrics: Sequence[str], *, root: Path,
                   figure: Path | None = None, caption: str = "", group_col: str = "group",
                   clip: bool = True) -> pl.DataFrame:
    """Groups side by side: mean and 95% interval per metric and group, the difference
    (paired where episodes match on their seed, else Welch) when there are two groups,
    and (with ``figure``) bars; returns the summary. Shared by the headline comparison
    and the scenario tables."""
    from simlab.analysis.compare import compare_pair, pair_key, summarize_groups

    summary = summarize_groups(df, metrics, group_col=group_col, clip=clip)
    rep.table(with_ci(summary), max_rows=100)
    groups = df[group_col].unique(maintain_order=True).to_list()
    if len(groups) == 2:
        a, b = groups
        key = pair_key(df, a, b, group_col)
        how = (f"paired t over episodes matched on `{key}`: same personas, situations and "
               "call seeds in both groups" if key else "Welch, unpaired")
        rep.para(f"Difference {b} − {a} per metric ({how}; 95% interval, two-sided p):")
        rep.table(compare_pair(df, metrics, a, b, group_col=group_col), max_rows=100)
    if figure is not None:
        from simlab.analysis.plots import headline_bars

        rep.figure(headline_bars, summary, metrics, figure, caption=caption, root=root)
    return summary
