"""Export runs (or reference corpora) to a training corpus, keeping only good episodes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simlab.analysis.analyze import load_inputs
from simlab.analysis.metrics import compute_metrics, reference_stats
from simlab.analysis.reference import is_reference_file, load_reference
from simlab.export.formats import FORMATS, SUFFIX, WRITERS
from simlab.export.rows import Filters, episode_rows


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    episodes_total: int
    episodes_kept: int


def default_path(paths: Sequence[str | Path], fmt: str) -> Path:
    ps = [Path(p) for p in paths]
    if len(ps) == 1 and is_reference_file(ps[0]):
        return ps[0].with_name(f"{ps[0].stem}_{fmt}{SUFFIX[fmt]}")
    base = ps[0] if len(ps) == 1 else Path(os.path.commonpath([p.resolve() for p in ps]))
    return base / "export" / f"{fmt}{SUFFIX[fmt]}"


def export(paths: Sequence[str | Path], fmt: str, out: str | Path | None = None,
           filters: Filters | None = None, reference: str | Path | None = None,
           seed: int = 0, strict: bool = False) -> ExportResult:
    """Write ``fmt`` rows for every kept episode of every run in ``paths`` (``strict``:
    a malformed corpus record is an error instead of being skipped)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format: expected one of {list(FORMATS)}, got {fmt!r}")
    filters = filters or Filters()
    ref = reference_stats(load_reference(reference, strict=strict), str(reference)) \
        if reference else None
    rows, total, kept = [], 0, 0
    for label, tables in load_inputs(paths, strict=strict):
        m = compute_metrics(tables, reference=ref, seed=seed)
        total += m.episodes.height
        kept += filters.apply(m.episodes).height
        rows += episode_rows(tables, label, m, filters)
    path = Path(out) if out is not None else default_path(paths, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    WRITERS[fmt](rows, path)
    return ExportResult(path, len(rows), total, kept)
