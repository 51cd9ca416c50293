"""Executors: where a run's episodes are played (``executor=local`` or ``executor=ray``).

The driver (:mod:`simlab.runner`) plans, checks and commits; an executor only plays
episodes and yields their results. See :mod:`simlab.executors.base`.
"""

from simlab.executors.base import (
    EpisodeContext,
    EpisodeRecord,
    EpisodeResult,
    Executor,
    ExecutorError,
    FreshStarts,
    Replays,
    play_episode,
)

__all__ = ["EpisodeContext", "EpisodeRecord", "EpisodeResult", "Executor", "ExecutorError",
           "FreshStarts", "Replays", "play_episode"]
