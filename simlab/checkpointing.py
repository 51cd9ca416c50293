"""The runner's side of in-episode checkpoints: write one every K ticks, resume from it.

Files and their integrity are :mod:`simlab.store.checkpoint`'s; what an engine's state
is, :mod:`simlab.scheduler.snapshot`'s. Here: which engine an episode starts with (a
restored one at its checkpoint's tick, else a fresh one at tick 0) and the callback the
engine calls between ticks.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simlab.backends.base import Backend
from simlab.scenario import Scenario
from simlab.scheduler.engine import TickEngine
from simlab.scheduler.settings import EngineConfig
from simlab.scheduler.snapshot import Marks, capture, marks, restore
from simlab.store.checkpoint import Checkpoints

log = logging.getLogger(__name__)


class EpisodeCheckpoints:
    """Checkpoints of one run directory, as the runner uses them."""

    def __init__(self, run_dir: str | Path, settings: EngineConfig) -> None:
        self.files = Checkpoints(run_dir)
        self.files.clear_partial()
        self.settings = settings
        self._started: dict[str, float] = {}  # episode -> wall clock of its tick 0 run
        self._saved: dict[str, Marks] = {}  # episode -> what its segments already hold

    def engine_for(self, episode_id: str, make: Callable[[], Scenario], backend: Backend,
                   **engine: Any) -> tuple[TickEngine, int]:
        """The episode's engine and the tick to start at."""
        found = self.files.read(episode_id)
        if found is not None:
            try:
                restored = restore(found.state, found.segments, backend,
                                   settings=self.settings, checkpoint=self.save, **engine)
            except Exception as exc:  # a class that moved, a stale module: start over
                log.warning("checkpoint of %s could not be restored (%s: %s); restarting it",
                            episode_id, type(exc).__name__, exc)
            else:
                self._started[episode_id] = time.perf_counter() - found.header.get("wall_s", 0)
                self._saved[episode_id] = marks(restored.scenario)
                log.info("episode %s resumed at tick %d from its checkpoint", episode_id,
                         found.tick)
                print(f"simlab: episode {episode_id} resumes at tick {found.tick} "
                      f"(checkpoint {self.files.path(episode_id)})", file=sys.stderr)
                return restored, found.tick
        self._started[episode_id] = time.perf_counter()
        self._saved[episode_id] = {}
        self.files.drop(episode_id)  # an unusable one: start its segments afresh
        return TickEngine(make(), backend, settings=self.settings, checkpoint=self.save,
                          **engine), 0

    def wall_s(self, episode_id: str) -> float:
        """The episode's wall time across invocations (checkpointed ones included)."""
        return time.perf_counter() - self._started.get(episode_id, time.perf_counter())

    def save(self, engine: TickEngine, tick: int) -> None:
        sc = engine.scenario
        since, now = self._saved.get(sc.episode_id, {}), marks(sc)
        state, segment = capture(engine, since)
        self.files.write(sc.episode_id, tick, state, segment,
                         (since.get("events", 0), now["events"]), seed=sc.seed,
                         wall_s=round(self.wall_s(sc.episode_id), 4))
        self._saved[sc.episode_id] = now

    def done(self, episode_id: str) -> None:
        """The episode is committed (or will be redone from scratch): forget its state."""
        self.files.drop(episode_id)
