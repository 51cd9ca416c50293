"""``simlab analyze`` end to end on mock runs: a sweep compared by projection, scenario
summaries, graceful degradation, the judge with its prompt versions and cache, errors."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import polars as pl
import pytest
from _analysis_runs import write_run
from conftest import compose

from simlab import registry
from simlab.analysis import analyze
from simlab.analysis.judge import PROMPTS
from simlab.backends.mock import MockBackend
from simlab.backends.wrappers import wrap_backend
from simlab.cli.main import main
from simlab.registry import ScenarioSpec
from simlab.runner import run
from simlab.scenario import Scenario
from simlab.scenario_config import ScenarioConfig

SPC = str(Path(__file__).parent / "fixtures" / "spc_small.csv")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 2 x 2 sweep on the mock backend, laid out as Hydra's multirun writes it."""
    root = tmp_path_factory.mktemp("sweep")
    for i, (proj, seed) in enumerate([(p, s) for s in (0, 1) for p in ("egocentric", "concat")]):
        cfg = compose("backend=mock", "episodes=2", "progress=false", f"seed={seed}",
                      f"projection={proj}")
        run(cfg, root / f"{i}_projection={proj},seed={seed}")
    return root


def test_analyze_sweep_compares_projections_with_intervals(sweep, tmp_path):
    out = tmp_path / "out"
    assert main(["analyze", str(sweep), "--out", str(out), "--distractors", SPC,
                 "--reference", SPC]) == 0
    episodes = pl.read_parquet(out / "metrics" / "episodes.parquet")
    assert episodes.height == 8
    assert set(episodes["group"]) == {"projection=egocentric", "projection=concat"}
    # 4 run personas + 4 from the distractor corpus: pools of 2 and 5, not 10
    assert "mrr_k10" not in episodes.columns
    for col in ("drift_level", "drift_slope", "consistency", "mrr_k2", "mrr_k5",
                "echo_rate", "echo_trend", "role_confusion_rate", "naturalness_distance"):
        assert episodes[col].null_count() == 0, col
    agents = pl.read_parquet(out / "metrics" / "agents.parquet")
    turns = pl.read_parquet(out / "metrics" / "turns.parquet")
    assert agents.height == 16 and turns.height == episodes["n_utterances"].sum()
    report = (out / "report.md").read_text()
    assert "| metric | projection=egocentric | projection=concat |" in report
    assert "Difference projection=concat − projection=egocentric" in report
    assert "(n=4)" in report  # four episodes per group, with an interval
    for png in ("headline", "drift_by_turn", "echo_by_turn", "mrr_by_pool", "turn_lengths"):
        assert (out / "plots" / f"{png}.png").stat().st_size > 1000
    assert "<table>" in (out / "report.html").read_text()


class SummaryScenario(Scenario):
    """Only its ``summarize`` is used: analysis finds it in the scenario registry by the
    manifest's ``config.scenario.name``."""

    def setup(self, population):  # pragma: no cover - never run
        raise NotImplementedError

    def system_prompt(self, agent):  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def summarize(cls, run):
        # a scenario table may have a column named like an analysis tag (opinion: group)
        return {"turn_counts": run.episodes.select("episode_id", "n_turns",
                                                   group=pl.lit("18-34"))}


class BrokenScenario(SummaryScenario):
    @classmethod
    def summarize(cls, run):
        raise KeyError("price")


SUMMARY_SPEC = ScenarioSpec("summ", SummaryScenario, ScenarioConfig)
BROKEN_SPEC = ScenarioSpec("summ_broken", BrokenScenario, ScenarioConfig)


@pytest.fixture
def summary_plugins(monkeypatch):
    """Install the two scenarios above as plugins would: entry points of the
    ``simlab.scenarios`` group, beside the real ones."""
    real = registry.entry_points
    ours = [EntryPoint(spec.name, f"{__name__}:{var}", registry.ENTRY_POINT_GROUP)
            for spec, var in ((SUMMARY_SPEC, "SUMMARY_SPEC"), (BROKEN_SPEC, "BROKEN_SPEC"))]
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [*real(group=group), *ours])
    registry.refresh()
    yield
    registry.refresh()


def test_scenario_summaries_are_written_and_reported(tmp_path, summary_plugins):
    runs = [write_run(tmp_path / f"r{i}", [[("a", "hello"), ("b", "hi")]], {"a": "x", "b": "y"},
                      config={"seed": i, "scenario": {"name": "summ"}})
            for i in range(2)]
    broken = write_run(tmp_path / "r2", [[("a", "hello"), ("b", "hi")]], {"a": "x", "b": "y"},
                       config={"seed": 2, "scenario": {"name": "summ_broken"}})
    an = analyze([*runs, broken], out=tmp_path / "out", formats=["md"], plots=False)
    table = pl.read_parquet(tmp_path / "out" / "scenario" / "turn_counts.parquet")
    assert table.height == 2 and table["n_turns"].to_list() == [2, 2]
    assert set(table["run"]) == {"r0", "r1"}
    assert set(table["group"]) == {"18-34"}  # the table's own column is kept
    assert set(table["analysis_group"]) == {"scenario=summ"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "### turn_counts" in report
    assert "BrokenScenario.summarize failed: KeyError" in report
    assert an.episodes.height == 3  # the broken plugin cost no other metric


def test_non_dialogue_runs_degrade_gracefully(tmp_path):
    # bidders shouting one-liners once each; one monologue episode
    bids = write_run(tmp_path / "bids", [[("a", "I bid 10."), ("b", "I bid 12."), ("c", "Out.")],
                                         [("a", "Still thinking, still thinking.")]],
                     {"a": "x", "b": "y", "c": "z"})
    an = analyze([bids], out=tmp_path / "out", formats=["md", "html"], plots=False)
    assert an.episodes["consistency"].null_count() == 2
    assert an.episodes["echo_rate"].null_count() == 2
    assert an.episodes["mrr_k2"].null_count() == 0
    assert (tmp_path / "out" / "report.html").is_file()


def test_judge_results_prompt_versions_and_cache(tmp_path):
    runs = [write_run(tmp_path / "r", [[("a", "I fish."), ("b", "I bake."), ("a", "I hate fish."),
                                        ("b", "Bread!")]], {"a": "likes fish", "b": "bakes"})]
    replies = ['{"label": "contradiction"}', '{"label": "neutral"}',  # t2, t3
               '{"confused": true}', '{"confused": false}', "not json", '{"confused": false}',
               '{"score": 4}']
    inner = MockBackend(replies=replies)
    judge = wrap_backend(inner, cache_path=tmp_path / "judge.sqlite")
    an = analyze(runs, out=tmp_path / "out", judge=judge, formats=["md"], plots=False)
    ep = an.episodes.row(0, named=True)
    assert ep["judge_contradiction_rate"] == 0.5
    assert ep["judge_role_confusion_rate"] == pytest.approx(1 / 3)  # "not json" is no verdict
    assert ep["judge_naturalness"] == 4.0
    prompts = an.judge.sort("task")
    assert prompts["judge_prompt"].to_list() == [PROMPTS[t].version for t in prompts["task"]]
    assert prompts.filter(task="roles")["unusable"][0] == 1
    calls = len(inner.calls)
    analyze(runs, out=tmp_path / "out2", judge=judge, formats=["md"], plots=False)
    # everything usable came from the cache; only the unusable reply was asked again
    assert len(inner.calls) == calls + 1
    judge.close()


def test_cli_judge_from_backend_config_and_errors(tmp_path, capsys):
    r = write_run(tmp_path / "r", [[("a", "I fish."), ("b", "I bake."), ("a", "Fish!")]],
                  {"a": "likes fish", "b": "bakes"})
    assert main(["analyze", str(r), "--judge", "mock", "--judge-tasks", "naturalness",
                 "--format", "md", "--no-plots"]) == 0
    assert (r / "analysis" / "judge_cache.sqlite").is_file()
    assert "judge_naturalness" in pl.read_parquet(r / "analysis" / "metrics" / "episodes.parquet")
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert "missing: no such run directory" in capsys.readouterr().err
    assert main(["analyze", str(r), "--judge-tasks", "vibes", "--judge", "mock"]) == 2
    assert "unknown task(s) ['vibes']" in capsys.readouterr().err


def test_persona_file_widens_retrieval_pools_without_duplicating_own(tmp_path):
    people = tmp_path / "people.yaml"
    people.write_text("".join(
        f"- {{id: q{i}, name: Q{i}, age: 30, description: {d}}}\n"
        for i, d in enumerate(["aaaa", "cccc", "dddd", "eeee", "ffff"])))
    r = write_run(tmp_path / "r", [[("a", "aaaa"), ("b", "bbbb"), ("a", "aaaa")]],
                  {"a": "aaaa", "b": "bbbb"})
    an = analyze([r], out=tmp_path / "out", distractors=people, formats=["md"], plots=False)
    # 2 own personas + 4 new ones ("aaaa" is a's own persona, not a distractor)
    assert an.run_table["n_distractor_pool"][0] == 6
    agents = an.agents.sort("agent_id")
    # a's "aaaa" ranks its own persona first at every pool size; b's "bbbb" too
    assert agents["mrr_k5"].to_list() == [1.0, 1.0]
    assert "mrr_k10" not in an.episodes.columns
