"""Cross-cutting backend wrappers: response cache, retry with backoff, accounting.

Each wrapper is itself a :class:`~simlab.backends.base.Backend` around an inner one (as
Concordia wraps its language models for retries and call limits), so the engine never
knows whether it talks to a model, a cache or a stack of both. :func:`wrap_backend`
composes the standard stack ``accounting ⊃ cache ⊃ retry ⊃ backend``.

The wrapper classes are loaded lazily (PEP 562) so the shared base below is defined
before the submodules that subclass it import this package.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.backends.base import Backend

if TYPE_CHECKING:
    from simlab.backends.wrappers.accounting import AccountingBackend
    from simlab.backends.wrappers.cache import CachedBackend
    from simlab.backends.wrappers.retry import RetryingBackend

__all__ = [
    "AccountingBackend",
    "BackendWrapper",
    "CachedBackend",
    "RetryingBackend",
    "wrap_backend",
]

_LAZY = {
    "AccountingBackend": "simlab.backends.wrappers.accounting",
    "CachedBackend": "simlab.backends.wrappers.cache",
    "RetryingBackend": "simlab.backends.wrappers.retry",
}


class BackendWrapper(Backend):
    """A backend that delegates to ``inner`` and adds one concern.

    ``name`` and ``model_id`` are the inner backend's, so event rows are the same whether
    or not a wrapper (say, a warm cache) is in the stack. ``describe()`` keeps the inner
    entry and adds ``wrappers`` (outermost first) plus this wrapper's settings under
    :attr:`kind`; ``stats()`` passes the inner stats through.
    """

    #: Label in ``describe()["wrappers"]`` and the key of this wrapper's settings.
    kind: str = "wrapper"

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def fingerprint(self) -> dict[str, Any]:
        return self.inner.fingerprint()

    def settings(self) -> dict[str, Any] | None:
        """This wrapper's manifest settings (``None``: nothing worth recording)."""
        return None

    def describe(self) -> dict[str, Any]:
        entry = dict(self.inner.describe())
        entry["wrappers"] = [self.kind, *entry.get("wrappers", [])]
        own = self.settings()
        if own is not None:
            entry[self.kind] = own
        return entry

    def stats(self) -> dict[str, Any]:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()


def wrap_backend(
    inner: Backend,
    *,
    cache_path: str | Path | None = None,
    retry: Mapping[str, Any] | None = None,
    accounting: bool = True,
) -> Backend:
    """Wrap ``inner`` as ``Accounting(Cache(Retry(inner)))``.

    Retry is innermost, so a cache hit never retries and only a final reply is cached;
    accounting is outermost, so it sees cache hits. ``retry`` holds
    :class:`~simlab.backends.wrappers.retry.RetryingBackend` keyword arguments (``None``:
    the defaults; ``{"enabled": False}``: no retry wrapper). ``cache_path=None`` means no
    cache.
    """
    from simlab.backends.wrappers.accounting import AccountingBackend
    from simlab.backends.wrappers.cache import CachedBackend
    from simlab.backends.wrappers.retry import RetryingBackend

    backend = inner
    options = dict(retry or {})
    if options.pop("enabled", True):
        backend = RetryingBackend(backend, **options)
    if cache_path is not None:
        backend = CachedBackend(backend, cache_path)
    if accounting:
        backend = AccountingBackend(backend)
    return backend


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
