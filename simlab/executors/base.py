"""What an executor runs and returns: one whole episode, as a record the driver commits.

An episode stays in one process: it is coupled turn by turn, and its atomic commit and
resume rules are per episode. An executor decides only *where* each episode runs (this
process, or a Ray worker). Every executor plays an episode through :func:`play_episode`
and hands back an :class:`EpisodeResult`; only the driver, which holds the run
directory's lock, writes the store. So a result is committed exactly once, whichever
worker produced it, and a worker needs no access to the run directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from simlab import run_status
from simlab.backends.base import Backend, BackendUnusable
from simlab.context.budget import ContextOverflow
from simlab.research.journal import as_dicts
from simlab.scenario import Scenario
from simlab.scheduler.engine import TickEngine
from simlab.scheduler.graph import run_episode
from simlab.store.episodes import episode_id
from simlab.usage import Usage


class ExecutorError(RuntimeError):
    """The executor cannot go on (every worker lost, an episode's workers died too often);
    the run stops as failed and a resume redoes what was not committed."""


@dataclass
class EpisodeContext:
    """Everything an episode needs that is the same for every episode of a run; a Ray
    worker receives it once, not once per episode."""

    cfg: Any  # the run's DictConfig: the scenario is built from it
    population: list
    seeds: list[int]
    interventions: list
    engine: dict[str, Any]  # TickEngine keywords: projection, memory
    settings: Any = None  # the run's EngineConfig
    backend_cfg: Any = None  # what a worker builds its own backend from
    retry_seed: int | None = None
    cwd: str = ""  # the driver's working directory: relative paths in the config

    def scenario(self, index: int) -> Scenario:
        from simlab.run_parts import make_scenario

        return make_scenario(self.cfg, self.population, index, self.seeds[index])


@dataclass
class EpisodeRecord:
    """A finished episode in the form the store writes."""

    events: list[dict[str, Any]]
    agents: list[dict[str, Any]]
    episode: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    calls: list[dict[str, Any]]
    turns: int
    failures: int
    usage: Usage
    termination: str

    @classmethod
    def of(cls, sc: Scenario, seed: int, wall: float) -> EpisodeRecord:
        events = sc.log.rows()
        failures = sum(1 for e in sc.log if e.kind == "failure")
        episode = {
            "episode_id": sc.episode_id,
            "episode_index": sc.episode_index,
            "scenario": sc.name,
            "seed": seed,
            "n_turns": sc.turns,
            "n_events": len(events),
            "n_failures": failures,
            "n_steps": sc.steps_taken,
            "termination_reason": sc.termination_reason,
            "wall_s": round(wall, 4),
            "participants": list(sc.participants),
            **sc.outcome(),
        }
        return cls(events, [sc.by_key[k].row() for k in sc.participants], episode,
                   dict(sc.tables()), as_dicts(sc.calls), sc.turns, failures,
                   Usage.total(e.usage for e in sc.log), sc.termination_reason)


@dataclass
class EpisodeResult:
    """One episode's end: a record to commit, or why there is none.

    ``error``: the backend ended it (not stored; redone on resume, counted by the circuit
    breaker). ``fatal``: no later episode can succeed either (the run stops as failed).
    """

    index: int
    record: EpisodeRecord | None = None
    error: str | None = None
    fatal: str | None = None
    worker: str = ""  # where it ran (the Ray node), for the log

    @property
    def episode_id(self) -> str:
        return episode_id(self.index)


class Starts(Protocol):
    """Where an episode's engine comes from: a checkpoint or tick 0 (the engine's
    settings are the starter's, since a restored engine brings its own callback)."""

    def engine_for(self, episode_id: str, make: Callable[[], Scenario], backend: Backend,
                   **engine: Any) -> tuple[TickEngine, int]: ...

    def wall_s(self, episode_id: str) -> float: ...


class FreshStarts:
    """Every episode from tick 0, with no checkpoints (a Ray worker's: a worker that
    dies loses that episode's progress, and the episode runs again elsewhere)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._started: dict[str, float] = {}

    def engine_for(self, episode_id: str, make: Callable[[], Scenario], backend: Backend,
                   **engine: Any) -> tuple[TickEngine, int]:
        self._started[episode_id] = time.perf_counter()
        return TickEngine(make(), backend, settings=self.settings, **engine), 0

    def wall_s(self, episode_id: str) -> float:
        return time.perf_counter() - self._started.pop(episode_id, time.perf_counter())


def play_episode(ctx: EpisodeContext, index: int, backend: Backend, starts: Starts, *,
                 embedder: Any = None, replay: Any = None,
                 make: Callable[[], Scenario] | None = None,
                 on_events: Callable[[list], None] | None = None) -> EpisodeResult:
    """Run episode ``index`` to its end on ``backend``: the one way every executor does."""
    eid = episode_id(index)
    engine, start = starts.engine_for(
        eid, make or (lambda: ctx.scenario(index)), backend, embedder=embedder,
        on_events=on_events, interventions=ctx.interventions, replay=replay, **ctx.engine)
    scenario = engine.scenario
    try:
        run_episode(engine, start)
    except BackendUnusable as exc:
        return EpisodeResult(index, fatal=f"backend unusable: {exc}")
    except ContextOverflow as exc:  # every later call would overflow the same way
        return EpisodeResult(index, fatal=f"context overflow: {exc}")
    error = run_status.backend_failure(scenario)
    if error is not None:  # a hollow episode: not committed, redone on resume
        return EpisodeResult(index, error=error)
    return EpisodeResult(index, EpisodeRecord.of(scenario, ctx.seeds[index],
                                                 starts.wall_s(eid)))


class Executor(Protocol):
    """Runs a run's episodes somewhere and yields their results as they finish.

    The driver may stop consuming at any result (a fatal one, the circuit breaker);
    ``close`` then stops whatever is still running.
    """

    def results(self, todo: Sequence[int]) -> Iterator[EpisodeResult]: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass
class Replays:
    """A fork's replays, read by the driver (the parent run need not be reachable from
    a worker); ``None`` for a run that is not a fork."""

    plan: Any = None

    def __call__(self, index: int) -> Any:
        if self.plan is None:
            return None
        return self.plan.replay(episode_id(index))
