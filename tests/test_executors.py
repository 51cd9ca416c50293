"""Executors, offline: the Ray worker's code path gives the local executor's episodes, and
the ``executor`` config is checked and is not part of the experiment."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import compose

from simlab.cli.extras import missing_extra
from simlab.config import embedder_for, engine_config, memory_config
from simlab.events import WALL_CLOCK_COLUMNS
from simlab.executors import EpisodeContext
from simlab.executors.ray_workers import EpisodeWorker
from simlab.runner import _plain, check_run_config, episode_seeds, retry_seed, run
from simlab.store import load_run
from simlab.store.resume import check_resumable


def _context(cfg, run_dir) -> EpisodeContext:
    """What the runner ships to each Ray worker, for a run with no interventions."""
    from simlab.population import build_population
    from simlab.runner import make_backend

    rng, seeds = episode_seeds(cfg.seed, cfg.episodes)
    population = build_population(cfg.population, rng, make_backend(cfg.backend))
    return EpisodeContext(cfg, population, seeds, [],
                          {"projection": cfg.projection.name.value,
                           "memory": memory_config(cfg)},
                          engine_config(cfg), cfg.backend, retry_seed(cfg.seed, run_dir))


@pytest.mark.parametrize("scenario", ["dialogue", "opinion"])
def test_a_ray_workers_episodes_are_the_local_executors(tmp_path, scenario) -> None:
    cfg = compose("backend=mock", "episodes=3", "progress=false", "seed=4",
                  f"scenario={scenario}")
    run(cfg, tmp_path / "local")
    local = load_run(tmp_path / "local").events.drop(list(WALL_CLOCK_COLUMNS))

    worker = EpisodeWorker(_context(cfg, tmp_path / "local"))
    assert embedder_for(memory_config(cfg), cfg.backend) is None
    # out of order, as a pool of workers would finish them, on one backend
    results = {i: worker.play(i) for i in (2, 0, 1)}
    worker.close()
    rows = [r for i in range(3) for r in results[i].record.events]
    ray_like = pl.DataFrame(rows).select(local.columns)
    assert local.height == len(rows) > 0
    assert local.drop("audience").equals(
        ray_like.drop("audience").cast(dict(local.drop("audience").schema)))
    assert local["audience"].to_list() == ray_like["audience"].to_list()
    for i, result in results.items():
        assert result.error is None and result.fatal is None
        assert result.record.episode["episode_index"] == i
        assert result.worker == ""  # built outside Ray


@pytest.mark.parametrize(("override", "message"), [
    ("executor.workers=0", "executor.workers: must be >= 1 or null, got 0"),
    ("executor.max_retries=-1", "executor.max_retries: must be >= 0, got -1"),
    ("executor.start_timeout_s=0", "executor.start_timeout_s: must be > 0, got 0"),
])
def test_bad_executor_settings_name_the_key(override, message) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        check_run_config(compose("backend=mock", "executor=ray", override))


def test_a_run_resumes_on_another_executor(tmp_path) -> None:
    cfg = compose("backend=mock", "episodes=1", "progress=false")
    run(cfg, tmp_path)
    on_ray = _plain(compose("backend=mock", "episodes=2", "progress=false", "executor=ray",
                            "executor.workers=4"))
    check_resumable(tmp_path, on_ray)  # the same experiment: no error
    other_seed = _plain(compose("backend=mock", "episodes=2", "progress=false", "seed=1"))
    with pytest.raises(ValueError, match=r"keys \['seed'\]"):
        check_resumable(tmp_path, other_seed)


def test_executor_ray_without_the_extra_names_the_install(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    message = missing_extra(["executor=ray"])
    assert message == ("executor=ray needs an optional extra that is not installed: "
                       "pip install 'simlab[ray]'")
    assert missing_extra(["executor=local"]) is None
