"""A real 2-agent dialogue on the embedded model (SmolLM2-135M through llama.cpp)."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import compose

from simlab.events import FAILURE, UTTERANCE, WALL_CLOCK_COLUMNS
from simlab.runner import make_backend, run
from simlab.store import load_run

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def backend():
    pytest.importorskip("llama_cpp")
    b = make_backend(compose().backend)
    yield b
    b.close()


def _run(tmp_path, backend, name, *overrides):
    cfg = compose("progress=false", "episodes=1", "scenario.min_turns=4",
                  "scenario.max_turns=4", "scenario.max_tokens=32", *overrides)
    run(cfg, tmp_path / name, backend=backend)
    return load_run(tmp_path / name)


def test_real_two_agent_dialogue(tmp_path, backend):
    tables = _run(tmp_path, backend, "a")
    said = tables.events.filter(kind=UTTERANCE)
    assert said.height == 4
    assert said["speaker"].n_unique() == 2
    assert all(len(t) > 0 for t in said["content"])
    assert (said["completion_tokens"] > 0).all() and (said["prompt_tokens"] > 0).all()
    assert (said["latency_s"] > 0).all()
    assert set(said["backend"]) == {"llamacpp"}
    assert all("SmolLM2-135M" in m for m in said["model"])
    # speakers alternate turn by turn (a reply still unusable after its re-ask, such as
    # the tiny model answering as the other person, is that turn's failure event)
    turns = tables.events.filter(pl.col("kind").is_in([UTTERANCE, FAILURE]))
    speakers = turns["speaker"].to_list()
    assert speakers[0] != speakers[1] and speakers[0] == speakers[2]
    assert tables.manifest["backend"]["backend"] == "llamacpp"
    assert tables.episodes["termination_reason"][0] in ("max_turns", "natural_close")


def test_embedded_run_is_deterministic_with_a_fixed_seed(tmp_path, backend):
    a = _run(tmp_path, backend, "a", "seed=11").events.drop(list(WALL_CLOCK_COLUMNS))
    b = _run(tmp_path, backend, "b", "seed=11").events.drop(list(WALL_CLOCK_COLUMNS))
    assert a.equals(b)
