"""The wrapper base: a backend that delegates to ``inner`` and adds one concern.

In its own module so each wrapper imports it without importing the package's
``__init__`` (which builds the stack from all of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simlab.backends.base import Backend, ChatRequest, Message


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

    @property
    def context_window(self) -> int | None:
        return self.inner.context_window

    def count_text(self, text: str) -> int:
        return self.inner.count_text(text)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return self.inner.count_tokens(messages)

    def prompt_extra(self, request: ChatRequest) -> int:
        return self.inner.prompt_extra(request)

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
