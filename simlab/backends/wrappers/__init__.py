"""Cross-cutting backend wrappers: response cache, retry with backoff, accounting.

Each wrapper is itself a :class:`~simlab.backends.base.Backend` around an inner one (as
Concordia wraps its language models for retries and call limits), so the engine never
knows whether it talks to a model, a cache or a stack of both. :func:`wrap_backend`
composes the standard stack ``accounting ⊃ cache ⊃ retry ⊃ backend``.

The shared base lives in :mod:`simlab.backends.wrappers.base`; the wrapper classes are
loaded lazily (PEP 562), so importing the package does not import every wrapper.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.backends.base import Backend
from simlab.backends.wrappers.base import BackendWrapper

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
