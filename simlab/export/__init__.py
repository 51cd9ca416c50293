"""Dialogue corpus export: chat JSONL per agent perspective (ECP), ShareGPT, HF Parquet.

``simlab export RUN_DIR --format openai|sharegpt|hf``; see :func:`export`.
"""

from simlab.export.api import export
from simlab.export.formats import FORMATS
from simlab.export.rows import Filters, episode_rows

__all__ = ["FORMATS", "Filters", "episode_rows", "export"]
