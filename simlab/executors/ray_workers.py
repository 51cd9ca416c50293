"""``executor=ray``: a run's episodes as tasks on Ray actors, committed by the driver.

One actor per worker builds the backend once (the embedded model loads once per worker,
not once per episode) and plays whole episodes on it; an episode never spans processes.
The driver keeps the run directory's lock and is the only writer: an actor returns the
finished episode's rows and the driver commits them. That keeps the local executor's
guarantees without a shared filesystem: each episode is committed once, atomically, in
the one process that holds the lock; resume sees exactly what the driver committed; and
a worker that dies loses only the episode it was playing, which the driver sends to
another worker (at most ``max_retries`` times) or leaves to a resume.

Checked against Ray 2.60 (``ray.wait``, actor options, ``RayActorError``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from typing import Any

from simlab import run_status
from simlab.executors.base import (
    EpisodeContext,
    EpisodeResult,
    ExecutorError,
    FreshStarts,
    Replays,
    play_episode,
)

log = logging.getLogger(__name__)
INSTALL = "pip install 'simlab[ray]'"


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"executor=ray needs the ray extra: {INSTALL}") from exc
    return ray


class EpisodeWorker:
    """The actor: one backend, many episodes. Built in the worker process."""

    def __init__(self, ctx: EpisodeContext, number: int = 0) -> None:
        from simlab.config import embedder_for
        from simlab.run_parts import make_backend

        if ctx.cwd and os.path.isdir(ctx.cwd):  # relative paths mean what they did
            os.chdir(ctx.cwd)                    # on the driver (a shared filesystem)
        self.ctx = ctx
        # each worker its own jitter, so workers do not back off in lock-step (replies and
        # events do not depend on it)
        seed = None if ctx.retry_seed is None else (ctx.retry_seed + number) % 2**64
        self.backend = make_backend(ctx.backend_cfg, retry_seed=seed)
        self.embedder = embedder_for(ctx.engine["memory"], ctx.backend_cfg)
        self.starts = FreshStarts(ctx.settings)

    def ready(self) -> str:
        """The Ray node this worker runs on ("" when built outside Ray, as in tests)."""
        try:
            import ray
        except ImportError:
            return ""
        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""

    def play(self, index: int, replay: Any = None) -> EpisodeResult:
        result = play_episode(self.ctx, index, self.backend, self.starts,
                              embedder=self.embedder, replay=replay)
        result.worker = self.ready()
        return result

    def stats(self) -> dict[str, Any]:
        return self.backend.stats()

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.close()
        self.backend.close()


class RayExecutor:
    """Episodes on a pool of :class:`EpisodeWorker` actors, results as they finish."""

    def __init__(self, ctx: EpisodeContext, options: Any, *,
                 replays: Replays | None = None, driver: Any = None) -> None:
        self.ray = ray = import_ray()
        self.driver = driver  # the driver's own backend (population calls): its stats too
        self.options = options
        self.replays = replays or Replays()
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=options.address, include_dashboard=False,
                     logging_level=logging.WARNING)
        self.idle: list[Any] = []
        self.busy: dict[Any, tuple[Any, int]] = {}
        self.starting: dict[Any, Any] = {}
        self.lost = self.spawned = 0
        try:
            self._dead = tuple(getattr(ray.exceptions, n) for n in
                               ("RayActorError", "WorkerCrashedError", "NodeDiedError",
                                "ObjectLostError") if hasattr(ray.exceptions, n))
            self._ctx = ray.put(ctx)
            self._remote = ray.remote(EpisodeWorker).options(
                num_cpus=options.num_cpus, num_gpus=options.num_gpus)
            self.workers = options.workers or self._fits()
        except BaseException:
            if self._owns:
                ray.shutdown()
            raise

    def _fits(self) -> int:
        """Workers the cluster has room for now: its CPUs (and GPUs) over each one's."""
        have = self.ray.cluster_resources()
        n = int(have.get("CPU", 1) // self.options.num_cpus) if self.options.num_cpus \
            else int(have.get("CPU", 1))
        if self.options.num_gpus:
            n = min(n, int(have.get("GPU", 0) // self.options.num_gpus))
        if n < 1:
            raise ExecutorError(f"executor=ray: the cluster ({have}) has no room for one "
                                f"worker of num_cpus={self.options.num_cpus}, "
                                f"num_gpus={self.options.num_gpus}")
        return n

    def _spawn(self) -> None:
        actor = self._remote.remote(self._ctx, self.spawned)
        self.spawned += 1
        self.starting[actor.ready.remote()] = actor

    def results(self, todo: Sequence[int]) -> Iterator[EpisodeResult]:
        queue, tries = deque(todo), Counter[int]()
        for _ in range(min(self.workers, len(todo)) - self.spawned):
            self._spawn()  # no more workers (model loads) than episodes
        while queue or self.busy:
            while queue and self.idle:
                index = queue[0]
                replay = self.replays(index)  # read before a worker is taken
                actor = self.idle.pop()
                queue.popleft()
                self.busy[actor.play.remote(index, replay)] = (actor, index)
            ref = self._next()
            if ref in self.starting:
                actor = self.starting.pop(ref)
                try:
                    self.ray.get(ref)
                except self._dead as exc:
                    self._lose(actor, f"a worker died while starting ({_why(exc)})")
                    continue
                self.idle.append(actor)
                continue
            actor, index = self.busy.pop(ref)
            try:
                result = self.ray.get(ref)
            except self._dead as exc:
                tries[index] += 1
                why = _why(exc)
                if tries[index] > self.options.max_retries:
                    raise ExecutorError(
                        f"episode {index}: its Ray worker died {tries[index]} times "
                        f"(executor.max_retries={self.options.max_retries}); last: {why}"
                    ) from exc
                self._lose(actor, f"its worker died while playing episode {index} ({why}); "
                           f"the episode runs again on another worker")
                queue.appendleft(index)
                self._prune_idle()  # a dead node takes its idle workers too
                self._spawn()  # a replacement, used once the cluster has room for it
                continue
            self.idle.append(actor)
            yield result

    def _next(self) -> Any:
        """The next finished task or started worker; a run with no worker that can
        start within ``start_timeout_s`` stops (a full cluster, a worker that
        cannot build its backend) instead of waiting for ever."""
        waiting = [*self.busy, *self.starting]
        if not waiting:
            raise ExecutorError("executor=ray: every worker was lost")
        timeout = None if self.busy else self.options.start_timeout_s
        ready, _ = self.ray.wait(waiting, num_returns=1, timeout=timeout)
        if not ready:
            raise ExecutorError(
                f"executor=ray: no worker started within {timeout} s "
                f"(executor.start_timeout_s); the cluster has {self.ray.available_resources()} "
                f"free, each worker needs num_cpus={self.options.num_cpus}, "
                f"num_gpus={self.options.num_gpus}")
        return ready[0]

    def _prune_idle(self, timeout_s: float = 10.0) -> None:
        """Drop idle workers that died unnoticed (their node went with a busy one), so
        that no episode is charged a retry for a worker that was already gone."""
        if not self.idle:
            return
        pings = {actor.ready.remote(): actor for actor in self.idle}
        answered, _ = self.ray.wait(list(pings), num_returns=len(pings), timeout=timeout_s)
        alive = []
        for ref in answered:
            try:
                self.ray.get(ref)
                alive.append(pings[ref])
            except self._dead as exc:
                self._lose(pings[ref], f"an idle worker had died ({_why(exc)})")
        for ref in set(pings) - set(answered):  # no answer in time: not to be trusted
            self._lose(pings[ref], f"an idle worker did not answer in {timeout_s} s")
        self.idle = alive

    def _lose(self, actor: Any, why: str) -> None:
        self.lost += 1
        log.warning("executor=ray: %s", why)
        print(f"simlab: executor=ray: {why}", file=sys.stderr)
        self.ray.kill(actor, no_restart=True)

    def stats(self) -> dict[str, Any]:
        """The driver's and the idle workers' backend stats, merged. A worker stopped
        mid-episode (the run ended early) or lost is not waited for: its stats are gone
        with it, and the episodes it committed keep their usage in their events."""
        refs = [a.stats.remote() for a in self.idle]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=30) if refs else ([], [])
        parts = []
        for ref in ready:
            try:
                parts.append(self.ray.get(ref))
            except self._dead:
                continue
        if self.driver is not None:
            parts.insert(0, self.driver.stats())
        merged = run_status.merge_stats(parts)
        merged["ray_workers"] = {"started": self.spawned, "lost": self.lost}
        return merged

    def close(self) -> None:
        """Stop every worker (a busy one mid-episode: that episode was not committed);
        and Ray, when this executor started it. Each step is tried, so a cluster that
        went away cannot keep the run from recording its end."""
        ray = self.ray
        try:
            closing = [a.close.remote() for a in self.idle]
            if closing:
                ray.wait(closing, num_returns=len(closing), timeout=30)
            for actor in [*self.idle, *(a for a, _ in self.busy.values()),
                          *self.starting.values()]:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception as exc:  # already gone with its node
                    log.debug("executor=ray: could not kill a worker: %s", exc)
        except Exception as exc:
            log.warning("executor=ray: stopping the workers failed: %s", exc)
        finally:
            self.idle, self.busy, self.starting = [], {}, {}
            if self._owns:
                ray.shutdown()


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
