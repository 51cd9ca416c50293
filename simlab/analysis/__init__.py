"""Episode analysis: persona drift, consistency, adherence, echoing, role confusion and
naturalness metrics over stored runs, reference corpora, and the comparative report.

See ``docs/metrics.md`` for each metric's formula and source. Entry points:
:func:`compute_metrics` (one run, polars tables) and :func:`analyze` (runs in, Parquet
tables and a Markdown/HTML report out; ``simlab analyze``).
"""

from simlab.analysis.analyze import Analysis, analyze
from simlab.analysis.metrics import MetricTables, compute_metrics, reference_stats
from simlab.analysis.reference import CorpusError, load_reference

__all__ = [
    "Analysis",
    "CorpusError",
    "MetricTables",
    "analyze",
    "compute_metrics",
    "load_reference",
    "reference_stats",
]
