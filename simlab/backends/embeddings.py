"""Text embeddings for retrieval memory's relevance, through litellm's embedding API.

One interface (:class:`Embedder`) and one implementation (:class:`LiteLLMEmbedder`), so
any model litellm can embed with works: a hosted one (``text-embedding-3-small``) or an
OpenAI-compatible server (``openai/<name>`` with an ``api_base``, e.g.
``python -m llama_cpp.server --embedding true``). Vectors are cached by model, endpoint
and text in the run's response-cache file (table ``embeddings``), so a warm re-run makes
no embedding call and ranks exactly as the first run did. The API key comes only from
the variable named by ``api_key_env``, read per call; it is never stored or printed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simlab.backends.base import BackendError
from simlab.backends.litellm_adapter import import_litellm

log = logging.getLogger(__name__)

KEY_VERSION = "simlab-embedding-v1"
EMBED_CHARS = 2000  # the most of one text sent to be embedded
BUSY_TIMEOUT_S = 30.0


@dataclass
class EmbeddingConfig:
    """``memory.embedding``: the model that embeds events for retrieval (None: BM25)."""

    model: str | None = None  # a litellm model name, e.g. openai/nomic-embed-text
    api_base: str | None = None
    api_key_env: str | None = None  # NAME of the env var holding the key; never the key
    batch: int = 64  # texts per embedding call
    num_retries: int = 3  # litellm's own retries of transient errors
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"memory.embedding.batch: must be >= 1, got {self.batch}")
        if self.num_retries < 0:
            raise ValueError(f"memory.embedding.num_retries: must be >= 0, got "
                             f"{self.num_retries}")
        if self.api_key_env is not None and not self.api_key_env.isidentifier():
            raise ValueError("memory.embedding.api_key_env: must be the NAME of an "
                             "environment variable, not a key")


class Embedder(ABC):
    """Turns texts into vectors; the same text always into the same vector."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order. Raises :class:`BackendError` on failure."""

    def close(self) -> None:  # noqa: B027
        """Release what the embedder holds (connections); idempotent."""


class LiteLLMEmbedder(Embedder):
    """``litellm.embedding`` in batches, with an optional SQLite cache of the vectors."""

    def __init__(self, config: EmbeddingConfig, cache_path: str | Path | None = None) -> None:
        if not config.model:
            raise ValueError("memory.embedding.model: set it to embed (e.g. "
                             "memory.embedding.model=openai/<name>)")
        self.config = config
        self.calls = self.hits = 0
        self._lock = threading.Lock()
        self._conn = _connect(Path(cache_path).expanduser()) if cache_path else None
        self._scope = json.dumps([KEY_VERSION, config.model, config.api_base])

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self._scope}\n{text}".encode()).hexdigest()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        keys = [self._key(t) for t in texts]
        found = self._lookup(keys)
        self.hits += sum(k in found for k in keys)
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True)
                                     if k not in found))
        for i in range(0, len(missing), self.config.batch):
            chunk = missing[i:i + self.config.batch]
            vectors = self._call(chunk)
            rows = {self._key(t): v for t, v in zip(chunk, vectors, strict=True)}
            found.update(rows)
            self._store(rows)
        return [found[k] for k in keys]

    def _call(self, texts: list[str]) -> list[list[float]]:
        litellm = import_litellm()
        kwargs: dict[str, Any] = {"model": self.config.model, "num_retries":
                                  self.config.num_retries, "timeout": self.config.timeout_s,
                                  # long texts are cut, empty ones padded: one bad input
                                  # must not fail every batch it is in
                                  "input": [t[:EMBED_CHARS] or " " for t in texts]}
        if self.config.api_base:
            kwargs["api_base"] = self.config.api_base
        key = None
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env)
            if not key:  # never fall back to litellm's own key for another endpoint
                raise BackendError(f"memory.embedding.api_key_env: environment variable "
                                   f"{self.config.api_key_env} is not set (it should hold "
                                   f"the API key)")
            kwargs["api_key"] = key
        elif self.config.api_base:
            kwargs["api_key"] = "none"  # a local server needs no key; litellm wants one
        self.calls += 1
        try:
            reply = litellm.embedding(**kwargs)
        except Exception as exc:  # litellm's exception types vary by provider
            detail = f"{type(exc).__name__}: {str(exc)[:200]}"
            if key:
                detail = detail.replace(key, "***")
            raise BackendError(f"embedding with {self.config.model} failed: {detail}") \
                from None
        data = sorted(reply.data, key=lambda d: d["index"])
        if len(data) != len(texts):
            raise BackendError(f"embedding with {self.config.model}: {len(data)} vectors "
                               f"for {len(texts)} texts")
        vectors = [_pooled(d["embedding"]) for d in data]
        if len({len(v) for v in vectors}) > 1:
            raise BackendError(f"embedding with {self.config.model}: vectors of different "
                               f"sizes {sorted({len(v) for v in vectors})}")
        return vectors

    def _lookup(self, keys: list[str]) -> dict[str, list[float]]:
        if self._conn is None or not keys:
            return {}
        out: dict[str, list[float]] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                marks = ",".join("?" * len(chunk))
                try:
                    rows = self._conn.execute(
                        f"SELECT key, value FROM embeddings WHERE key IN ({marks})", chunk)
                    out.update((k, json.loads(v)) for k, v in rows)
                except (sqlite3.Error, ValueError) as exc:
                    log.warning("embedding cache read failed: %s", exc)
                    return out
        return out

    def _store(self, rows: dict[str, list[float]]) -> None:
        if self._conn is None or not rows:
            return
        with self._lock:
            try:
                with self._conn:
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO embeddings (key, value) VALUES (?, ?)",
                        [(k, json.dumps(v)) for k, v in rows.items()])
            except sqlite3.Error as exc:
                log.warning("embedding cache write failed: %s", exc)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _pooled(embedding: Any) -> list[float]:
    """One vector. A server without pooling for its model (llama.cpp's with a generative
    GGUF: pooling type none) returns one vector per token; those are mean-pooled."""
    if embedding and isinstance(embedding[0], list):
        n = len(embedding)
        return [math.fsum(col) / n for col in zip(*embedding, strict=True)]
    return [float(x) for x in embedding]


def _connect(path: Path) -> sqlite3.Connection | None:
    """The cache file's ``embeddings`` table (None, logged, if it cannot be opened: the
    cache is an optimisation, never a reason for a run to die)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS embeddings "
                         "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        return conn
    except (sqlite3.Error, OSError) as exc:
        log.warning("%s: cannot open the embedding cache: %s", path, exc)
        return None
