"""The call journal's table: ``episodes/<id>/calls.parquet``, what a fork replays.

Its rows are written by the engine (``simlab.research.journal``), committed with the
episode's other tables (``RunStore.write_episode``) and read back by
``simlab.store.episodes.read_calls``; this module holds their name and schema.
"""

from __future__ import annotations

import polars as pl

CALLS_FILE = "calls.parquet"
CALLS_SCHEMA = pl.Schema({
    "n": pl.Int64, "step": pl.Int64, "tag": pl.String, "request": pl.String,
    "text": pl.String, "parsed": pl.String, "error": pl.String, "transient": pl.Boolean,
    "fatal": pl.Boolean, "finish_reason": pl.String, "model": pl.String,
    "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "latency_s": pl.Float64,
    "cost_usd": pl.Float64, "attempts": pl.Int64, "cached": pl.Boolean})

