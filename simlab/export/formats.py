"""Writers for the three corpus formats.

- ``openai``: chat fine-tuning JSONL, one conversation per line
  (``{"messages": [{"role", "content"}…], …}``), from one agent's perspective;
- ``sharegpt``: ``{"conversations": [{"from": "system"|"human"|"gpt", "value"}…], …}``;
- ``hf``: one Parquet file that ``datasets.load_dataset("parquet", data_files=…)``
  and polars both read: ``messages`` as a list of ``{role, content}`` structs, persona,
  scenario and model columns, and one column per metric.

Every row also carries ``run``, ``episode_id``, ``agent_id``, ``persona_id``,
``persona_name``, ``role``, ``persona``, ``scenario``, ``model`` and the metrics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

FORMATS = ("openai", "sharegpt", "hf")
SUFFIX = {"openai": ".jsonl", "sharegpt": ".jsonl", "hf": ".parquet"}
_SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}


def _jsonl(rows: Sequence[dict[str, Any]], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_openai(rows: Sequence[dict[str, Any]], path: Path) -> None:
    _jsonl(rows, path)


def write_sharegpt(rows: Sequence[dict[str, Any]], path: Path) -> None:
    out = []
    for r in rows:
        conv = [{"from": _SHAREGPT_FROM[m["role"]], "value": m["content"]}
                for m in r["messages"]]
        out.append({"conversations": conv, **{k: v for k, v in r.items() if k != "messages"}})
    _jsonl(out, path)


def write_hf(rows: Sequence[dict[str, Any]], path: Path) -> None:
    metric_keys = sorted({k for r in rows for k in r["metrics"]})
    flat = [{**{k: v for k, v in r.items() if k != "metrics"},
             **{k: r["metrics"].get(k) for k in metric_keys}} for r in rows]
    schema: dict[str, Any] = {
        "run": pl.String, "episode_id": pl.String, "agent_id": pl.String,
        "persona_id": pl.String, "persona_name": pl.String, "role": pl.String,
        "persona": pl.String, "scenario": pl.String, "model": pl.String,
        "messages": pl.List(pl.Struct({"role": pl.String, "content": pl.String})),
        **{k: pl.Float64 for k in metric_keys},
    }
    tmp = path.with_name(path.name + ".tmp")
    pl.DataFrame(flat, schema=schema).write_parquet(tmp)
    tmp.replace(path)


WRITERS = {"openai": write_openai, "sharegpt": write_sharegpt, "hf": write_hf}
