"""The call journal: every backend call of an episode, in order, with its reply.

The engine records each request it sends (and each a scenario's judge sends) as one row
of ``scenario.calls``: its tick, a digest of its messages and the whole response. The
store keeps it as ``calls.parquet`` beside the events. It is what lets a fork replay
its parent's first K ticks exactly with no backend call: the world is rebuilt by
running the episode again from its seed, and every reply before tick K is read back
from the parent's journal (:class:`ReplayBackend`) instead of asking a model. The digest
checks that the fork really asks what its parent asked; one that does not (an override
that changes the prompts before K) stops with :class:`ForkDiverged`.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simlab.backends.base import Backend, ChatRequest, ChatResponse
from simlab.backends.wrappers.base import BackendWrapper

#: Columns of ``calls.parquet``, in order.
CALL_COLUMNS: tuple[str, ...] = (
    "n", "step", "tag", "request", "text", "parsed", "error", "transient", "fatal",
    "finish_reason", "model", "prompt_tokens", "completion_tokens", "latency_s", "cost_usd",
    "attempts", "cached")
CallRow = tuple[Any, ...]


class ForkDiverged(RuntimeError):
    """A fork's request before its fork step is not the one its parent made there."""


def request_digest(request: ChatRequest) -> str:
    """What a request asks, as a short digest: its messages and JSON schema. Sampling
    settings are left out, so a fork may change them from its fork step on."""
    body = json.dumps([request.messages_dicts(), request.json_schema], sort_keys=True,
                      ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:20]


def call_row(n: int, step: int, request: ChatRequest, resp: ChatResponse) -> CallRow:
    # key order kept: a replayed reply must be the same dict, down to its order
    parsed = "" if resp.parsed is None else json.dumps(resp.parsed, ensure_ascii=False)
    return (n, step, request.tag, request_digest(request), resp.text, parsed, resp.error,
            resp.transient, resp.fatal, resp.finish_reason, resp.model, resp.prompt_tokens,
            resp.completion_tokens, resp.latency_s, resp.cost_usd, resp.attempts, resp.cached)


def as_dicts(rows: Sequence[CallRow]) -> list[dict[str, Any]]:
    """Journal rows as table rows for the store."""
    return [dict(zip(CALL_COLUMNS, r, strict=True)) for r in rows]


def response_of(row: dict[str, Any]) -> ChatResponse:
    """The response a journal row recorded, as the engine first saw it."""
    return ChatResponse(
        text=row["text"], parsed=json.loads(row["parsed"]) if row["parsed"] else None,
        error=row["error"], transient=row["transient"], fatal=row["fatal"],
        finish_reason=row["finish_reason"], model=row["model"],
        prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
        latency_s=row["latency_s"], cost_usd=row["cost_usd"], attempts=row["attempts"],
        cached=row["cached"])


class JournaledBackend(BackendWrapper):
    """Appends every request and its response to ``journal`` (the engine's, per episode)."""

    kind = "journal"

    def __init__(self, inner: Backend, journal: list[CallRow], step: Callable[[], int]) -> None:
        super().__init__(inner)
        self.journal = journal
        self.step = step

    def generate(self, batch: Sequence[ChatRequest]) -> list[ChatResponse]:
        responses = self.inner.generate(batch)
        step, journal = self.step(), self.journal
        for request, resp in zip(batch, responses, strict=False):
            journal.append(call_row(len(journal), step, request, resp))
        return responses

    def close(self) -> None:  # the run owns the backend, not the episode
        pass


@dataclass(frozen=True)
class Replay:
    """What a fork replays: its parent episode's journal rows, up to tick ``until``."""

    rows: tuple[dict[str, Any], ...]
    until: int
    parent: str = ""

    def before(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["step"] < self.until]


class ReplayBackend(BackendWrapper):
    """Answers from a parent's journal before tick ``replay.until``, asks ``inner`` after.

    ``skip`` rows are already behind the engine (it was restored from a checkpoint of
    the fork itself). ``replayed`` counts the answers read back; none reach ``inner``,
    so its accounting shows zero calls for the replayed ticks.
    """

    kind = "replay"

    def __init__(self, inner: Backend, replay: Replay, step: Callable[[], int],
                 skip: int = 0) -> None:
        super().__init__(inner)
        self.replay = replay
        self.rows = deque(replay.before()[skip:])
        self.step = step
        self.replayed = 0

    def generate(self, batch: Sequence[ChatRequest]) -> list[ChatResponse]:
        step = self.step()
        if step >= self.replay.until:
            if self.rows:
                raise ForkDiverged(
                    f"{self.replay.parent}: the parent made {len(self.rows)} more call(s) "
                    f"before step {self.replay.until} than this fork (first at step "
                    f"{self.rows[0]['step']}, agent {self.rows[0]['tag']!r})")
            return self.inner.generate(batch)
        out = []
        for request in batch:
            if not self.rows:
                raise ForkDiverged(f"{self.replay.parent}: at step {step} this fork asks "
                                   f"{request.tag!r}, but the parent made no more calls "
                                   f"before step {self.replay.until}")
            row = self.rows.popleft()
            if row["step"] != step or row["request"] != request_digest(request):
                raise ForkDiverged(
                    f"{self.replay.parent}: at step {step} this fork asks {request.tag!r} "
                    f"something its parent did not (parent: step {row['step']}, agent "
                    f"{row['tag']!r}); an override changed the prompts before step "
                    f"{self.replay.until}: make it an intervention at that step instead")
            out.append(response_of(row))
        self.replayed += len(out)
        return out

    def close(self) -> None:
        pass
