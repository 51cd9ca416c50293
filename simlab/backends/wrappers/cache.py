"""Persistent response cache: a warm re-run makes no model calls and never pays twice.

Keys are the SHA-256 of the backend's :meth:`~simlab.backends.base.Backend.fingerprint`
(model, endpoint, model file, sampler settings the backend holds) plus
:meth:`ChatRequest.cache_key_material` (messages, sampling parameters, seed, schema), so
any change to what determines the reply is a miss. Values
are the successful responses as JSON in one SQLite table. SQLite in WAL mode with a busy
timeout lets several processes share one file without corrupting it. The cache is an
optimisation: if the database cannot be read or written the call still goes through and
the problem is logged, so a run never dies for its cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from simlab.backends.base import Backend, BackendError, ChatRequest, ChatResponse
from simlab.backends.wrappers.base import BackendWrapper

log = logging.getLogger(__name__)

#: Bumped when the stored value format changes, so old entries become misses.
KEY_VERSION = "simlab-cache-v2"  # v2: the backend fingerprint is in the key
BUSY_TIMEOUT_S = 30.0
_CHUNK = 500  # keys per SELECT, well under SQLite's host-parameter limit

#: Response fields stored and restored verbatim (``latency_s`` goes to ``extra`` on a hit).
_FIELDS = (
    "text", "prompt_tokens", "completion_tokens", "latency_s", "finish_reason", "model",
    "parsed", "cost_usd", "attempts",
)  # fmt: skip


def _encode(response: ChatResponse) -> str | None:
    """JSON for a response, dropping a non-JSON ``extra``; ``None`` if still unstorable."""
    payload: dict[str, Any] = {f: getattr(response, f) for f in _FIELDS}
    for extra in (response.extra, {}):
        try:
            return json.dumps({**payload, "extra": extra}, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError):
            continue
    return None


def _hit(stored: Any) -> ChatResponse | None:
    """A fresh response object for a cache hit (no model ran, so no latency).

    ``None`` for a malformed entry, which is then treated as a miss and overwritten.
    """
    try:
        fields = {f: stored[f] for f in _FIELDS if f in stored}
        original_latency = fields.pop("latency_s", 0.0)
        extra = {**stored.get("extra", {}), "original_latency_s": original_latency}
        return ChatResponse(**fields, latency_s=0.0, cached=True, extra=extra)
    except (TypeError, AttributeError):
        return None


class CachedBackend(BackendWrapper):
    """Serve repeated requests from an on-disk SQLite cache; send only misses inward.

    All misses of a batch go to ``inner.generate`` as one batch, and its successful
    responses are stored (errors never are). A hit equals the stored response (text,
    tokens, finish reason, model, parsed, cost, attempts) with ``cached=True`` and
    ``latency_s=0.0``; the original latency is in ``extra["original_latency_s"]``.
    Cost and attempts are kept so a warm run's events equal the cold run's.
    ``read_only`` serves hits from an existing file but stores nothing.
    """

    kind = "cache"

    def __init__(self, inner: Backend, path: str | Path, *, read_only: bool = False) -> None:
        super().__init__(inner)
        self.path = Path(path).expanduser()
        self.read_only = read_only
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self._lock = threading.Lock()
        self._fingerprint = json.dumps(inner.fingerprint(), sort_keys=True, ensure_ascii=False,
                                       default=str)
        self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.read_only:
                if not self.path.is_file():
                    raise BackendError(f"{self.path}: response cache not found (read_only)")
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                conn = sqlite3.connect(
                    uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False
                )
                conn.execute("SELECT 1 FROM responses LIMIT 1").fetchall()
                return conn
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS responses "
                    "(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )
            return conn
        except (sqlite3.Error, OSError) as exc:
            raise BackendError(f"{self.path}: cannot open response cache: {exc}") from exc

    def key_for(self, request: ChatRequest) -> str:
        """Cache key of ``request`` for this backend's model."""
        material = (f"{KEY_VERSION}\n{self._fingerprint}\n"
                    f"{request.cache_key_material(self.model_id)}")
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def settings(self) -> dict[str, Any]:
        return {"path": str(self.path), "read_only": self.read_only}

    def stats(self) -> dict[str, Any]:
        own = {"hits": self.hits, "misses": self.misses, "stored": self.stored}
        return {**self.inner.stats(), "cache": own}

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        keys = [self.key_for(r) for r in requests]
        found = self._lookup(set(keys))
        out: list[ChatResponse | None] = [None] * len(requests)
        missed: list[int] = []
        for i, key in enumerate(keys):
            hit = _hit(found[key]) if key in found else None
            if hit is None:
                missed.append(i)
            out[i] = hit
        with self._lock:
            self.hits += len(requests) - len(missed)
            self.misses += len(missed)
        if missed:
            fresh = self.inner.generate([requests[i] for i in missed])
            if len(fresh) != len(missed):
                message = (
                    f"backend {self.inner.name} returned {len(fresh)} responses "
                    f"for {len(missed)} requests"
                )
                fresh = [
                    ChatResponse(text="", error=message, finish_reason="error", model=self.model_id)
                    for _ in missed
                ]
            rows: list[tuple[str, str]] = []
            for i, resp in zip(missed, fresh, strict=True):
                out[i] = resp
                value = _encode(resp) if resp.ok else None
                if value is not None:
                    rows.append((keys[i], value))
            self._store(rows)
        return [r for r in out if r is not None]

    def _lookup(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted(keys)
        found: dict[str, dict[str, Any]] = {}
        try:
            with self._lock:
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    cursor = self._conn.execute(
                        f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk
                    )
                    for key, value in cursor:
                        try:
                            found[key] = json.loads(value)
                        except ValueError:
                            log.warning("%s: corrupt entry %s, treated as a miss", self.path, key)
        except sqlite3.Error as exc:
            log.warning("%s: response cache unreadable, treating as misses: %s", self.path, exc)
            return {}
        return found

    def _store(self, rows: list[tuple[str, str]]) -> None:
        if self.read_only or not rows:
            return
        try:
            with self._lock, self._conn:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", rows
                )
                self.stored += len(rows)
        except sqlite3.Error as exc:
            log.warning("%s: could not store %d responses: %s", self.path, len(rows), exc)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        super().close()
