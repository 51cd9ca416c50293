"""Run a configured experiment: population → episodes on the scheduler graph → store.

One run = one seed = one run directory. The run's RNG is seeded once; it first draws every
episode's seed (so episode k's seed does not depend on which episodes already ran, which
is what makes resuming a killed run exact), then samples the population if asked to.
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simlab import run_status
from simlab.backends.base import Backend
from simlab.checkpointing import EpisodeCheckpoints
from simlab.config import embedder_for, engine_config, executor_config, memory_config
from simlab.executors import EpisodeContext, EpisodeRecord, Executor, ExecutorError, Replays
from simlab.executors.local import LocalExecutor
from simlab.population import build_population
from simlab.registry import spec_of_run
from simlab.research.fork import fork_plan
from simlab.research.interventions import check_values, parse_interventions
from simlab.run_parts import (
    _plain,
    episode_seeds,
    make_backend,
    make_scenario,
    retry_seed,
    scenario_config,
)
from simlab.scenario import Scenario
from simlab.store import RunStore, build_manifest
from simlab.store.episodes import episode_id
from simlab.store.lock import run_lock
from simlab.store.resume import check_resumable
from simlab.usage import Usage

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[1]



@dataclass
class RunSummary:
    run_dir: Path
    episodes_run: int = 0
    episodes_skipped: int = 0
    turns: int = 0
    failures: int = 0
    usage: Usage = field(default_factory=Usage)
    wall_s: float = 0.0
    terminations: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("run_dir")
        usage = out.pop("usage")
        out["prompt_tokens"] = usage["prompt_tokens"]
        out["completion_tokens"] = usage["completion_tokens"]
        out["cost_usd"] = round(usage["cost_usd"], 6)
        out["terminations"] = dict(self.terminations)
        out["wall_s"] = round(self.wall_s, 3)
        return out


def check_run_config(cfg: DictConfig) -> None:
    """Values that the schema's types cannot rule out, named by key: the run's own here,
    the scenario's and the engine's by their dataclasses' ``__post_init__``."""
    _at_least(cfg, "episodes", 1)
    _at_least(cfg, "max_failed_episodes", 0)
    scenario_config(cfg)
    engine_config(cfg)
    memory_config(cfg)
    executor_config(cfg)


def _at_least(node: Any, key: str, low: int, prefix: str = "") -> None:
    value = node.get(key)
    if value is not None and value < low:
        raise ValueError(f"{prefix}{key}: must be >= {low}, got {value}")


class RunFailed(RuntimeError):
    """The run stopped before doing its work (its backend is unusable); ``status`` is
    what the manifest says."""

    def __init__(self, message: str, status: str = run_status.FAILED) -> None:
        super().__init__(message)
        self.status = status


def run(cfg: DictConfig, run_dir: str | Path, backend: Backend | None = None, *,
        resume_command: str | None = None,
        on_start: Callable[[Path], None] | None = None) -> RunSummary:
    """Run ``cfg.episodes`` episodes into ``run_dir``, skipping ones already stored.

    Holds the run directory's lock throughout. ``on_start(run_dir)`` runs once every
    check has passed, just before the manifest is written (the CLI writes ``.hydra/``
    there). Raises :class:`RunFailed` when the run stopped early; the manifest then says
    ``failed`` and why, and the episodes it could not finish are redone by the next
    invocation with the same config.
    """
    run_dir = Path(run_dir)
    check_run_config(cfg)
    config = _plain(cfg)
    with run_lock(run_dir):
        check_resumable(run_dir, config)
        with RunStore(run_dir) as store:
            return _run_locked(cfg, config, store, backend, resume_command, on_start)


def _run_locked(cfg: DictConfig, config: dict, store: RunStore, backend: Backend | None,
                resume_command: str | None, on_start: Callable[[Path], None] | None
                ) -> RunSummary:
    from tqdm.auto import tqdm

    run_dir = store.run_dir
    done, broken = store.verify()
    rng, seeds = episode_seeds(cfg.seed, cfg.episodes)
    plan = fork_plan(cfg)
    selected = [i for i in range(cfg.episodes) if plan is None or plan.includes(episode_id(i))]
    todo = [i for i in selected if episode_id(i) not in done]
    own_backend = backend is None
    backend = backend or make_backend(cfg.backend, retry_seed=retry_seed(cfg.seed, run_dir))
    try:
        population = build_population(cfg.population, rng, backend)
        # Build the first episode now: a config error it finds (min_turns > max_turns …)
        # must stop the run before its manifest exists, or the corrected command would
        # be refused as "a different config".
        first = make_scenario(cfg, population, todo[0], seeds[todo[0]]) if todo else None
        interventions = parse_interventions(config.get("interventions") or [],
                                            spec_of_run({"name": cfg.scenario.name}).cls,
                                            population)
        if first is not None:
            check_values(interventions, first)
        for eid, problem in sorted(broken.items()):
            moved = store.quarantine(eid)
            log.warning("episode %s was broken (%s); moved to %s and redone", eid, problem,
                        moved)
            print(f"simlab: episode {eid} in {run_dir} was broken ({problem}); redoing it "
                  f"(the broken copy is in {moved})", file=sys.stderr)
        if on_start is not None:
            on_start(run_dir)
        old = store.read_manifest() or {}
        invocations = run_status.invocations_of(old)
        started = time.time()
        manifest = build_manifest(config, cfg.seed, backend.describe(), PROJECT_ROOT)
        manifest.update(run_dir=str(run_dir), status=run_status.RUNNING, cwd=os.getcwd(),
                        invocations=invocations)
        if resume_command:
            manifest["resume_command"] = resume_command
        if "created_at" in old:
            manifest["created_at"] = old["created_at"]
        store.write_manifest(manifest)
    except BaseException:
        if own_backend:
            backend.close()
        raise

    summary = RunSummary(run_dir, episodes_skipped=len(selected) - len(todo))
    settings, memory = engine_config(cfg), memory_config(cfg)
    status, cause, failed = run_status.INCOMPLETE, "", []
    bar_eps = tqdm(total=len(selected), initial=summary.episodes_skipped, desc="episodes",
                   disable=not cfg.progress, position=0)
    bar_turns = tqdm(desc="turns", unit="turn", disable=not cfg.progress, position=1, leave=False)
    streak, executor = 0, None
    try:
        ctx = EpisodeContext(cfg, population, seeds, interventions,
                             {"projection": config["projection"]["name"], "memory": memory},
                             settings, cfg.backend, retry_seed(cfg.seed, run_dir), os.getcwd())
        checkpoints = EpisodeCheckpoints(run_dir, settings)
        executor = _executor(cfg, ctx, backend, checkpoints, plan, first,
                             lambda evs: bar_turns.update(len(evs)))
        for result in executor.results(todo):
            bar_turns.reset()
            if result.fatal is not None:
                raise RunFailed(result.fatal)
            if result.error is not None:  # a hollow episode: not committed, redone on resume
                error = result.error
                failed.append({"episode_id": result.episode_id, "error": error[:300]})
                log.warning("episode %s ended by backend failures: %s", result.episode_id,
                            error)
                streak += 1
                if cfg.max_failed_episodes and streak >= cfg.max_failed_episodes:
                    raise RunFailed(f"{streak} episodes in a row ended by backend failures "
                                    f"(max_failed_episodes={cfg.max_failed_episodes}); "
                                    f"last error: {error[:300]}")
                continue
            streak = 0
            assert result.record is not None
            _commit(store, result.record, summary, result.worker)
            checkpoints.done(result.episode_id)
            bar_eps.update()
        status = run_status.COMPLETE if not failed else run_status.INCOMPLETE
        if failed:
            cause = (f"{len(failed)} episode(s) ended by backend failures and were not "
                     f"stored; run the same command again to redo them")
    except ExecutorError as exc:
        status, cause = run_status.FAILED, str(exc)
        raise RunFailed(cause) from exc
    except RunFailed as exc:
        status, cause = exc.status, str(exc)
        raise
    except (KeyboardInterrupt, SystemExit):
        status, cause = run_status.INTERRUPTED, "interrupted"
        raise
    except BaseException as exc:
        status, cause = run_status.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        bar_turns.close()
        bar_eps.close()
        summary.wall_s = time.time() - started
        stats = _close(executor, backend)
        _finish(store, summary, stats, invocations, status, cause, failed, len(selected),
                done=len(done) + summary.episodes_run)
        if own_backend:
            backend.close()
    if status != run_status.COMPLETE:
        raise RunFailed(cause, status)
    return summary


def _executor(cfg: DictConfig, ctx: EpisodeContext, backend: Backend,
              checkpoints: EpisodeCheckpoints, plan: Any, first: Scenario | None,
              on_events: Callable[[list], None]) -> Executor:
    """The configured executor (``executor.name``) for this run's episodes."""
    replays = Replays(plan)
    options = executor_config(cfg)
    if options.name.value == "ray":
        from simlab.executors.ray_workers import RayExecutor

        # resolved here, so workers run the config the manifest records (an ${oc.env:…}
        # would otherwise be read on each worker's machine)
        resolved = copy.deepcopy(cfg)
        OmegaConf.resolve(resolved)
        ctx = replace(ctx, cfg=resolved, backend_cfg=resolved.backend)
        return RayExecutor(ctx, options, replays=replays, driver=backend)
    embedder = embedder_for(ctx.engine["memory"], cfg.get("backend"))
    return LocalExecutor(ctx, backend, checkpoints, embedder=embedder, replays=replays,
                         first=first, on_events=on_events)


def _close(executor: Executor | None, backend: Backend) -> dict[str, Any]:
    """Stop the executor; the run's backend stats (the driver's, and its workers')."""
    if executor is None:
        return backend.stats()
    try:
        stats = executor.stats()
    except Exception as exc:  # a cluster that went away: the driver's own stats
        log.warning("could not collect the workers' backend stats: %s", exc)
        stats = backend.stats()
    finally:
        try:
            executor.close()
        except Exception as exc:  # the run's end state is still written
            log.warning("could not stop the executor: %s", exc)
    return stats


def _finish(store: RunStore, summary: RunSummary, stats: dict, invocations: list,
            status: str, cause: str, failed: list, planned: int, done: int) -> None:
    """Write the run's end state; a write that fails (a full disk) is reported, not
    allowed to hide the error that ended the run."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    this = {"finished_at": now, "status": status, "summary": summary.as_dict(),
            "backend_stats": stats}
    if cause:
        this["cause"] = cause
    if failed:
        this["failed_episodes"] = failed
    invocations = [*invocations, this]
    whole = run_status.merge_stats([i["summary"] for i in invocations])
    whole.pop("episodes_skipped", None)
    whole["episodes_done"] = done
    whole["episodes_planned"] = planned
    fields = {"status": status, "cause": cause or None, "summary": whole,
              "backend_stats": run_status.merge_stats([i["backend_stats"] for i in invocations]),
              "invocations": invocations, "finished_at": now}
    try:
        try:
            store.update_manifest(**fields)
        except OSError as exc:  # a full disk: free the store's reserve and write it again
            if exc.errno != errno.ENOSPC or not store.release_reserve():
                raise
            store.update_manifest(**fields)
    except OSError as exc:
        log.error("could not record the run's end state in %s: %s", store.manifest_path, exc)
        print(f"simlab: could not record the run's end state ({status}) in "
              f"{store.manifest_path}: {exc.strerror or exc}", file=sys.stderr)


def _commit(store: RunStore, rec: EpisodeRecord, summary: RunSummary, worker: str) -> None:
    eid = rec.episode["episode_id"]
    store.write_episode(eid, rec.events, rec.agents, rec.episode, tables=rec.tables,
                        calls=rec.calls)
    summary.episodes_run += 1
    summary.turns += rec.turns
    summary.failures += rec.failures
    summary.usage += rec.usage
    summary.terminations[rec.termination] += 1
    log.info("episode %s: %d turns, ended: %s%s", eid, rec.turns, rec.termination,
             f" (on Ray node {worker})" if worker else "")
