"""Forks: the call journal, exact replay with zero backend calls, divergence only from the
fork step, the checks a fork makes of its parent, and ``simlab fork`` itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import compose

from simlab.backends.base import ChatRequest, Message
from simlab.backends.mock import MockBackend
from simlab.backends.wrappers import wrap_backend
from simlab.checkpointing import EpisodeCheckpoints
from simlab.config import engine_config
from simlab.events import INTERVENTION, WALL_CLOCK_COLUMNS
from simlab.population import build_population
from simlab.research.fork import ForkError, fork_plan
from simlab.research.journal import CALL_COLUMNS, ForkDiverged, Replay, ReplayBackend
from simlab.runner import episode_seeds, make_backend, make_scenario, run
from simlab.scheduler import run_episode
from simlab.store import load_run, read_calls

BASE = ("scenario=opinion", "backend=mock", "population=sampled", "population.n=8",
        "scenario.n_agents=5", "scenario.ticks=6", "scenario.survey_every=3", "episodes=2",
        "progress=false")


def _events(run_dir: Path) -> pl.DataFrame:
    return load_run(run_dir).events.drop(WALL_CLOCK_COLUMNS)


def _run(run_dir: Path, *overrides: str):
    """Run with a fresh accounting-wrapped mock; returns it (its ``stats()``)."""
    cfg = compose(*BASE, *overrides)
    backend = make_backend(cfg.backend)
    run(cfg, run_dir, backend)
    return backend


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fork") / "parent"
    _run(out)
    return out


def test_every_call_is_journaled_beside_the_events(parent):
    rows = read_calls(parent, "ep00000")
    assert rows is not None and list(rows[0]) == list(CALL_COLUMNS)
    assert [r["n"] for r in rows] == list(range(len(rows)))
    events = _events(parent).filter(pl.col("prompt_tokens") > 0, episode_id="ep00000")
    # one call per model-made event here (no re-asks): the same tokens, in the same order
    assert [r["prompt_tokens"] for r in rows] == events["prompt_tokens"].to_list()
    assert sorted({r["step"] for r in rows}) == list(range(8))  # 6 days + 2 survey waves


def test_a_fork_with_no_change_replays_exactly_with_zero_calls(parent, tmp_path):
    # K = the episodes' length (8 steps: 6 days, 2 survey waves): everything replays
    backend = _run(tmp_path / "fork", f"fork.parent={parent}", "fork.at_step=8")
    assert _events(tmp_path / "fork").equals(_events(parent))
    assert backend.stats()["requests"] == 0 and backend.stats()["calls"] == 0
    manifest = json.loads((tmp_path / "fork" / "manifest.json").read_text())
    assert manifest["config"]["fork"] == {"parent": str(parent), "at_step": 8,
                                          "episodes": []}
    assert manifest["status"] == "complete"


def test_a_fork_at_k_calls_the_backend_only_from_k(parent, tmp_path):
    backend = _run(tmp_path / "fork", f"fork.parent={parent}", "fork.at_step=5")
    assert _events(tmp_path / "fork").equals(_events(parent))  # no change: same world
    later = sum(1 for e in ("ep00000", "ep00001") for r in read_calls(parent, e)
                if r["step"] >= 5)
    assert backend.stats()["requests"] == later == 2 * 5 * 3  # steps 5, 6, 7: 5 agents


def test_a_fork_with_an_intervention_differs_only_from_k(parent, tmp_path):
    news = "interventions=[{at:4,kind:broadcast,text:'The mill will close.'}]"
    _run(tmp_path / "fork", f"fork.parent={parent}", "fork.at_step=4", news,
         "fork.episodes=[ep00001]")
    fork, before = _events(tmp_path / "fork"), _events(parent).filter(episode_id="ep00001")
    assert fork["episode_id"].unique().to_list() == ["ep00001"]
    assert fork.filter(pl.col("step") < 4).equals(before.filter(pl.col("step") < 4))
    assert not fork.filter(pl.col("step") >= 4).equals(before.filter(pl.col("step") >= 4))
    first = fork.filter(pl.col("step") >= 4).row(0, named=True)
    assert (first["kind"], first["content"]) == (INTERVENTION, "The mill will close.")


def test_a_fork_that_changes_the_past_is_refused(parent, tmp_path):
    early = "interventions=[{at:2,kind:broadcast,text:'Too early.'}]"
    with pytest.raises(ForkError, match=r"interventions\[0\]\.at: a fork at step 4 cannot "
                                        r"change what happened before it"):
        _run(tmp_path / "early", f"fork.parent={parent}", "fork.at_step=4", early)
    with pytest.raises(ForkDiverged, match="an override changed the prompts before step 4"):
        _run(tmp_path / "topic", f"fork.parent={parent}", "fork.at_step=4",
             "scenario.topic=tolls")
    stopped = json.loads((tmp_path / "topic" / "manifest.json").read_text())
    assert stopped["status"] == "failed" and "ForkDiverged" in stopped["cause"]
    with pytest.raises(ForkError, match=r"^seed: a fork keeps its parent's seed \(0\)"):
        _run(tmp_path / "seed", f"fork.parent={parent}", "seed=1")
    with pytest.raises(ForkError, match=r"^fork.episodes: \['ep00009'\] are not stored"):
        _run(tmp_path / "ep", f"fork.parent={parent}", "fork.episodes=[ep00009]")
    with pytest.raises(ForkError, match=r"^fork.at_step: 9 is beyond the end of episode "
                                        r"ep00000 \(8 steps\)"):
        _run(tmp_path / "far", f"fork.parent={parent}", "fork.at_step=9")
    with pytest.raises(ForkError, match=r"^episodes: a fork keeps its parent's episode "
                                        r"count \(2\), got 3"):
        _run(tmp_path / "more", f"fork.parent={parent}", "episodes=3")
    for name in ("early", "seed", "ep", "far", "more"):
        assert not (tmp_path / name / "manifest.json").exists()


def test_a_parent_without_a_journal_cannot_be_forked(parent, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(parent, old)
    (old / "episodes" / "ep00000" / "calls.parquet").unlink()
    commit = old / "episodes" / "ep00000" / "_commit.json"
    rows = json.loads(commit.read_text())
    rows["rows"].pop("calls.parquet")
    commit.write_text(json.dumps(rows))
    with pytest.raises(ForkError, match="episode ep00000 has no call journal"):
        _run(tmp_path / "fork", f"fork.parent={old}", "fork.at_step=3")


def test_a_replay_that_runs_out_of_parent_calls_diverges():
    request = ChatRequest(messages=(Message("user", "hi"),), tag="a0")
    replay = ReplayBackend(MockBackend(), Replay((), until=3, parent="p/ep0"), lambda: 1)
    with pytest.raises(ForkDiverged, match="at step 1 this fork asks 'a0', but the parent "
                                           "made no more calls before step 3"):
        replay.generate([request])


def test_a_killed_fork_resumes_from_its_checkpoint_without_calls(parent, tmp_path):
    """A fork checkpointed inside its replayed ticks resumes where it was, replaying the
    rest of them (the journal rows it had already used are skipped)."""
    cfg = compose(*BASE, f"fork.parent={parent}", "fork.at_step=6",
                  "engine.checkpoint_every=2")
    plan = fork_plan(cfg)
    assert plan is not None
    settings = engine_config(cfg)
    rng, seeds = episode_seeds(cfg.seed, cfg.episodes)
    pop = build_population(cfg.population, rng, None)
    ckpts = EpisodeCheckpoints(tmp_path / "run", settings)
    first = wrap_backend(make_backend(cfg.backend).inner)

    class Killed(Exception):
        pass

    def kill_at_4(engine, tick):
        ckpts.save(engine, tick)
        if tick == 4:
            raise Killed

    engine, start = ckpts.engine_for("ep00000", lambda: make_scenario(cfg, pop, 0, seeds[0]),
                                     first, replay=plan.replay("ep00000"))
    engine.checkpoint = kill_at_4
    with pytest.raises(Killed):
        run_episode(engine, start)
    second = wrap_backend(make_backend(cfg.backend).inner)
    engine, start = EpisodeCheckpoints(tmp_path / "run", settings).engine_for(
        "ep00000", lambda: pytest.fail("restored, not rebuilt"), second,
        replay=plan.replay("ep00000"))
    assert start == 4
    run_episode(engine, start)
    got = [e.to_row() for e in engine.scenario.log]
    want = _events(parent).filter(episode_id="ep00000").to_dicts()
    assert [{k: v for k, v in r.items() if k != "latency_s"} for r in got] == want
    assert first.stats()["requests"] == 0 and second.stats()["requests"] == 2 * 5


# ------------------------------------------------------------------ simlab fork
def test_simlab_fork_inherits_the_parent_overrides_and_adds_an_intervention(tmp_path):
    parent = tmp_path / "parent"
    cmd = [sys.executable, "-m", "simlab.cli.main"]
    done = subprocess.run([*cmd, *BASE, f"hydra.run.dir={parent}"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*cmd, "fork", str(parent), "--at-step", "3", "--episode", "ep00000", "--out",
         str(tmp_path / "fork"), "--intervene",
         "{kind: broadcast, text: 'Prices rise.', audience: 'role:member'}"],
        capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "fork" / "manifest.json").read_text())
    assert manifest["config"]["fork"] == {"parent": str(parent), "at_step": 3,
                                          "episodes": ["ep00000"]}
    assert manifest["config"]["interventions"] == [
        {"at": 3, "kind": "broadcast", "text": "Prices rise.", "audience": "role:member"}]
    assert manifest["config"]["scenario"]["ticks"] == 6  # the parent's override
    fork, before = _events(tmp_path / "fork"), _events(parent).filter(episode_id="ep00000")
    assert fork.filter(pl.col("step") < 3).equals(before.filter(pl.col("step") < 3))
    bad = subprocess.run([*cmd, "fork", str(tmp_path), "--at-step", "1"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "not a run directory" in bad.stderr


# ------------------------------------------------------- analyze PARENT FORK
def test_analyze_pairs_a_fork_with_its_parent(parent, tmp_path):
    from simlab.analysis import analyze

    news = "interventions=[{at:2,kind:broadcast,text:'The mill will close.'}]"
    _run(tmp_path / "fork", f"fork.parent={parent}", "fork.at_step=2", news)
    an = analyze([parent, tmp_path / "fork"], out=tmp_path / "analysis", plots=False,
                 formats=("md",))
    effects = an.scenario["fork_effects"]
    row = effects.filter(table="opinion", metric="last_mean_stance").row(0, named=True)
    before = load_run(parent).tables["ticks"].sort("episode_id", "tick")
    after = load_run(tmp_path / "fork").tables["ticks"].sort("episode_id", "tick")
    last = [t.group_by("episode_id").agg(pl.col("mean_stance").last()).sort("episode_id")
            ["mean_stance"].to_list() for t in (before, after)]
    assert row["effect"] == pytest.approx((last[1][0] - last[0][0] + last[1][1]
                                           - last[0][1]) / 2)
    assert row["n_episodes"] == 2 and row["at_step"] == 2
    ticks = an.scenario["fork_effects_ticks"].filter(table="opinion_ticks",
                                                      metric="mean_stance")
    # days 1-2 happened before the fork: no effect at all there
    assert ticks.filter(pl.col("tick") < 2)["effect"].to_list() == [0.0, 0.0]
    assert (tmp_path / "analysis" / "scenario" / "fork_effects.parquet").is_file()
