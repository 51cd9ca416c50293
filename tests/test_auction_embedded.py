"""A tiny mixed auction on the embedded model (SmolLM2-135M through llama.cpp)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import compose

from simlab.runner import make_backend, run
from simlab.store import load_run

pytestmark = pytest.mark.embedded


def test_real_model_bids_beside_a_rule_bidder(tmp_path):
    pytest.importorskip("llama_cpp")
    cfg = compose("scenario=auction", "progress=false", "episodes=1", "scenario.n_items=1",
                  "scenario.n_bidders=2", "scenario.max_rounds=2",
                  "scenario.rule_bidders=[truthful]")
    backend = make_backend(cfg.backend)
    try:
        run(cfg, tmp_path / "r", backend=backend)
    finally:
        backend.close()
    t = load_run(tmp_path / "r")
    acts = t.events.filter(pl.col("kind").is_in(["bid", "out"]))
    llm = acts.filter(pl.col("backend") == "llamacpp")
    assert llm.height >= 1 and all("SmolLM2-135M" in m for m in llm["model"])
    assert (llm["prompt_tokens"] > 0).all() and (llm["completion_tokens"] > 0).all()
    for row in llm.iter_rows(named=True):  # the grammar keeps the model to legal actions
        action = json.loads(row["data"])
        assert action["action"] == row["kind"]
    assert acts.filter(pl.col("backend") == "rule").height >= 1
    closed = t.events.filter(pl.col("kind").is_in(["sale", "unsold"]))
    assert closed.height == 1
    assert t.episodes["termination_reason"].to_list() == ["auction_complete"]
    assert t.tables["items"]["closed"][0] in ("sold_no_new_bid", "sold_last_bidder",
                                              "sold_max_rounds", "unsold")
