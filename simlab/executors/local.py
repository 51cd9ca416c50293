"""The default executor: a run's episodes one after another in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from simlab.backends.base import Backend
from simlab.executors.base import EpisodeContext, EpisodeResult, Replays, Starts, play_episode
from simlab.scenario import Scenario


class LocalExecutor:
    """Episodes in order on the driver's backend, resumed from their checkpoints."""

    def __init__(self, ctx: EpisodeContext, backend: Backend, starts: Starts, *,
                 embedder: Any = None, replays: Replays | None = None,
                 first: Scenario | None = None,
                 on_events: Callable[[list], None] | None = None) -> None:
        self.ctx, self.backend, self.starts = ctx, backend, starts
        self.embedder = embedder
        self.replays = replays or Replays()
        self.first = first  # the episode the runner built to check the config: reused
        self.on_events = on_events

    def results(self, todo: Sequence[int]) -> Iterator[EpisodeResult]:
        for index in todo:
            built, self.first = self.first, None
            yield play_episode(self.ctx, index, self.backend, self.starts,
                               embedder=self.embedder,
                               replay=self.replays(index), on_events=self.on_events,
                               make=(lambda b=built: b) if built is not None else None)

    def stats(self) -> dict[str, Any]:
        return self.backend.stats()

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.close()
