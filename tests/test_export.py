"""``simlab export``: chat JSONL per agent perspective (ECP), ShareGPT and HF Parquet,
loaded back with json, polars and ``datasets``; quality filters."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from _analysis_runs import write_run

from simlab.cli.main import main
from simlab.export import Filters, export

PERSONAS = {"x": "aaaa", "y": "bbbb", "u": "cccc", "v": "dddd"}


@pytest.fixture
def run_dir(tmp_path):
    # ep0: x and y each keep their own style (consistency 1);
    # ep1: u's late text is v's early text and vice versa (consistency <= 0.5)
    return write_run(tmp_path / "run", [
        [("x", "aaaa"), ("y", "bbbb"), ("x", "aaaa"), ("y", "bbbb")],
        [("u", "cccc"), ("v", "dddd"), ("u", "dddd"), ("v", "cccc")],
    ], PERSONAS, config={"scenario": {"name": "toy"}},
        names={"x": "Xena Li", "y": "Yuri Ito", "u": "Uma Ray", "v": "Vic Roe"},
        narration="They meet.")


def test_openai_jsonl_is_each_agents_egocentric_view(run_dir, tmp_path):
    out = tmp_path / "o.jsonl"
    assert main(["export", str(run_dir), "--format", "openai", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4
    x = next(r for r in rows if r["episode_id"] == "ep00000" and r["agent_id"] == "x")
    roles = [m["role"] for m in x["messages"]]
    contents = [m["content"] for m in x["messages"][1:]]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert contents == ["[Narrator] They meet.", "aaaa", "Yuri Ito: bbbb", "aaaa"]
    assert "aaaa" in x["messages"][0]["content"]  # the persona card
    y = next(r for r in rows if r["episode_id"] == "ep00000" and r["agent_id"] == "y")
    # y heard the narration and x's turn as one merged user message; trailing x turn dropped
    assert [m["content"] for m in y["messages"][1:]] == [
        "[Narrator] They meet.\nXena Li: aaaa", "bbbb", "Xena Li: aaaa", "bbbb"]
    assert x["scenario"] == "toy" and x["model"] == "toy/model"
    assert x["persona_name"] == "Xena Li" and x["persona_id"] == "p_x"
    assert x["metrics"]["consistency"] == 1.0 and x["metrics"]["episode_consistency"] == 1.0


def test_min_consistency_keeps_only_good_episodes(run_dir, tmp_path):
    res = export([run_dir], "openai", tmp_path / "f.jsonl", Filters(min_consistency=0.6))
    assert (res.episodes_total, res.episodes_kept, res.rows) == (2, 1, 2)
    rows = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert {r["episode_id"] for r in rows} == {"ep00000"}
    with pytest.raises(ValueError, match="needs --reference"):
        export([run_dir], "openai", tmp_path / "g.jsonl", Filters(max_naturalness_distance=1))


def test_sharegpt_maps_roles(run_dir, tmp_path):
    out = tmp_path / "s.jsonl"
    export([run_dir], "sharegpt", out)
    row = json.loads(out.read_text().splitlines()[0])
    assert [c["from"] for c in row["conversations"]] == ["system", "human", "gpt", "human", "gpt"]
    assert {"persona", "scenario", "model", "metrics"} <= set(row)


def test_hf_parquet_loads_with_polars_and_datasets(run_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "d.parquet"
    assert main(["export", str(run_dir), "--format", "hf", "--out", str(out)]) == 0
    df = pl.read_parquet(out)
    assert df.height == 4
    assert {"persona", "scenario", "model", "messages", "consistency",
            "episode_echo_rate"} <= set(df.columns)
    assert df["messages"][0][0]["role"] == "system"
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert ds.num_rows == 4
    assert ds[0]["messages"][1] == {"role": "user", "content": "[Narrator] They meet."}
    assert ds[0]["scenario"] == "toy"


def test_default_paths_and_errors(run_dir, capsys):
    assert main(["export", str(run_dir), "--format", "sharegpt"]) == 0
    assert (run_dir / "export" / "sharegpt.jsonl").is_file()
    assert main(["export", str(run_dir / "nope"), "--format", "hf"]) == 2
    assert "nope: no such run directory" in capsys.readouterr().err


def test_reference_corpus_exports_too(tmp_path):
    out = tmp_path / "ref.jsonl"
    res = export([Path(__file__).parent / "fixtures" / "spc_small.csv"], "openai", out)
    assert res.rows == 4
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"][0]["content"].startswith("You are User 1.\nI love hiking")
