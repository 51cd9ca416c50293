"""Golden events: one episode of each scenario on the mock backend, with fixed seeds.

The stored events (wall-clock columns dropped) and scenario tables were written before the
scenario packages were reorganised (issue 13); any change to what a scenario does shows up
here as a diff. Regenerate only for an intended behaviour change:
``SIMLAB_REGEN_GOLDEN=1 pytest tests/test_golden.py``, and say why in the commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

from simlab.events import WALL_CLOCK_COLUMNS
from simlab.runner import run
from simlab.store import load_run
from tests.conftest import compose

GOLDEN = Path(__file__).resolve().parent / "golden"

#: name -> Hydra overrides; each case is one episode on the mock backend.
CASES: dict[str, list[str]] = {
    "dialogue": ["scenario=dialogue", "seed=11"],
    "group_dialogue": ["scenario=group_dialogue", "seed=12"],
    "auction": ["scenario=auction", "seed=13"],
    "auction_first_price_rules": [
        "scenario=auction", "scenario.format=first_price",
        "scenario.rule_bidders=[truthful,shading]", "scenario.n_bidders=4", "seed=14"],
    "economy": ["scenario=economy", "seed=15"],
    "economy_voting_archetypes": [
        "scenario=economy", "scenario.voting=true", "scenario.archetypes=true",
        "scenario.ticks=4", "seed=16"],
    "opinion": ["scenario=opinion", "seed=17"],
    "opinion_sbm_rule": [
        "scenario=opinion", "scenario.graph=sbm", "scenario.agent_policy=rule", "seed=18"],
}


def _rows(df: pl.DataFrame) -> list[dict]:
    return json.loads(df.write_json())


def _observed(tmp_path: Path, overrides: list[str]) -> dict:
    cfg = compose("backend=mock", "episodes=1", "progress=false", *overrides)
    run(cfg, tmp_path / "run")
    tables = load_run(tmp_path / "run")
    out = {"events": _rows(tables.events.drop(list(WALL_CLOCK_COLUMNS)))}
    for name in sorted(tables.tables):
        out[name] = _rows(tables.tables[name])
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_events(case: str, tmp_path: Path) -> None:
    observed = _observed(tmp_path, CASES[case])
    path = GOLDEN / f"{case}.json"
    if os.environ.get("SIMLAB_REGEN_GOLDEN"):
        path.write_text(json.dumps(observed, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(path.read_text())
    assert observed["events"], "an episode with no events is no golden case"
    assert sorted(observed) == sorted(expected)
    assert observed["events"] == expected["events"], f"{case}: the events differ"
    for name in expected:
        assert _ulps(observed[name]) == _ulps(expected[name]), f"{case}: table {name!r} differs"


def _ulps(rows: list[dict]) -> list[dict]:
    """Scenario tables with floats to 12 significant digits: metrics such as a weighted
    welfare are BLAS dot products, whose last bit depends on the CPU's kernels (AVX2 vs
    AVX-512); the events themselves are compared exactly."""
    return [{k: float(f"{v:.12g}") if isinstance(v, float) else v for k, v in row.items()}
            for row in rows]
