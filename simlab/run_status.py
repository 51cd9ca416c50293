"""What a run's status means, and how a run is told apart from a hollow one.

A run reports ``complete`` only when every episode it was asked for is committed. An
episode that ended because the backend failed (the endpoint died, every call timed out)
is not a finished episode: it is not committed, so a resume redoes it. Several of them in
a row trip a circuit breaker that stops the run early as ``failed``, naming the cause,
instead of burning through the remaining episodes against a dead endpoint.

This module also keeps the manifest's ``summary`` and ``backend_stats`` true over several
invocations of one run (a run resumed twice is still one run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from simlab.events import FAILURE

if TYPE_CHECKING:
    from simlab.scenario import Scenario

#: Run statuses, as written to ``manifest.json``.
RUNNING, COMPLETE, INCOMPLETE, FAILED, INTERRUPTED = (
    "running", "complete", "incomplete", "failed", "interrupted")
#: Failure events written for a transport error start with this (see the engine's act).
BACKEND_ERROR_PREFIX = "backend error: "
_FAILURE_ENDINGS = ("too_many_failures", "all_failed")


def backend_failure(sc: Scenario) -> str | None:
    """The backend error that ended ``sc``'s episode, or None if it ended on its own.

    An episode ended by backend failure is one whose termination is a failure stop
    (too many consecutive failures, a phase in which everyone failed, or
    ``on_failure=stop``) and whose last failure was a transport error rather than the
    model's own invalid reply.
    """
    reason = sc.termination_reason or ""
    if not (reason in _FAILURE_ENDINGS or reason.startswith("failure:")):
        return None
    last = next((e for e in reversed(sc.log) if e.kind == FAILURE), None)
    if last is None or not last.content.startswith(BACKEND_ERROR_PREFIX):
        return None
    return last.content[len(BACKEND_ERROR_PREFIX):]


def invocations_of(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The invocations a manifest records; a manifest written before simlab kept them
    counts as one invocation, so its work stays in the whole-run totals."""
    if "invocations" in manifest:
        return list(manifest["invocations"] or [])
    if "summary" in manifest:
        return [{"finished_at": manifest.get("finished_at"), "status": manifest.get("status"),
                 "summary": manifest.get("summary") or {},
                 "backend_stats": manifest.get("backend_stats") or {}}]
    return []


def _merge(a: Any, b: Any) -> Any:
    """Sum two stats values: numbers add, dicts merge key by key, anything else is b."""
    if isinstance(a, bool) or isinstance(b, bool):
        return b
    if isinstance(a, int | float) and isinstance(b, int | float):
        total = a + b
        return round(total, 9) if isinstance(total, float) else total
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return {k: _merge(a[k], b[k]) if k in a and k in b else (b[k] if k in b else a[k])
                for k in {**a, **b}}
    return b


def _latency(parts: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    """Latency over invocations: exact max, request-weighted mean and percentiles.

    Percentiles of a union cannot be rebuilt from the parts' percentiles; the weighted
    average is the documented approximation (each invocation keeps its own exact ones).
    """
    weighted = [(max(int(p.get("requests", 0)) - int(p.get("cache_hits", 0)), 0),
                 p["latency_s"]) for p in parts if isinstance(p.get("latency_s"), Mapping)]
    total = sum(w for w, _ in weighted)
    if not weighted:
        return None
    out = {"max": max(float(lat.get("max", 0.0)) for _, lat in weighted)}
    for key in ("p50", "p90", "p99", "mean"):
        out[key] = round(sum(w * float(lat.get(key, 0.0)) for w, lat in weighted) / total, 6) \
            if total else 0.0
    return out


def merge_stats(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``backend_stats`` (or ``summary``) for several invocations of a run."""
    if not parts:
        return {}
    if len(parts) == 1:
        return dict(parts[0])
    merged: Any = {}
    for part in parts:
        merged = _merge(merged, dict(part)) if merged else dict(part)
    latency = _latency(parts)
    if latency is not None:
        merged["latency_s"] = latency
    return merged
