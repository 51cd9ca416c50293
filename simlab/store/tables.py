"""Rows to the store's Parquet tables: flattened, typed, and written durably.

Helpers of :class:`simlab.store.episodes.RunStore`'s commit: nested values become
``<key>_json`` text so per-episode files always concatenate, known columns get the
store's types, and each file is fsynced with a disk-full error that names it.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from simlab.store.manifest import StoreError


def flatten_row(row: Mapping[str, Any], keep_lists: frozenset[str] = frozenset()) -> dict:
    """Nested values become JSON text in ``<key>_json`` so tables stay flat and concat."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in keep_lists and isinstance(value, list | tuple):
            out[key] = [str(v) for v in value]
        elif isinstance(value, Mapping | list | tuple | set | frozenset):
            if isinstance(value, set | frozenset):
                value = sorted(value, key=str)
            out[f"{key}_json"] = json.dumps(value, sort_keys=True, ensure_ascii=False)
        else:
            out[key] = value
    return out


def typed_frame(rows: list[dict], schema: pl.Schema, where: str) -> pl.DataFrame:
    """Rows to a frame, known columns typed by ``schema`` and the rest inferred."""
    present = {k for r in rows for k in r}
    try:
        df = pl.DataFrame(
            rows,
            schema_overrides={k: t for k, t in schema.items() if k in present},
            infer_schema_length=None,
        )
    except Exception as exc:  # polars raises several types for mixed or bad values
        raise StoreError(f"{where}: cannot build table ({exc})") from exc
    missing = [k for k in schema if k not in df.columns]
    if missing:
        df = df.with_columns(pl.lit(None, dtype=schema[k]).alias(k) for k in missing)
    order = [k for k in schema if k in df.columns]
    return df.select(order + [c for c in df.columns if c not in schema])


def write_synced(df: pl.DataFrame, path: Path) -> None:
    """Write and fsync one table. Encoded in memory first, so that a full disk surfaces
    as ``OSError(ENOSPC)`` naming the file (polars reports it as a Parquet thrift error)."""
    buf = io.BytesIO()
    df.write_parquet(buf)
    try:
        with open(path, "wb") as fh:
            fh.write(buf.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
