"""Backends: one interface (:class:`Backend`) with swappable implementations.

Implementations are imported lazily (PEP 562 ``__getattr__``) so that importing
``simlab.backends`` never loads llama.cpp, litellm or GPU libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simlab.backends.base import Backend, BackendError, ChatRequest, ChatResponse, Message

if TYPE_CHECKING:
    from simlab.backends.hf import TransformersBackend
    from simlab.backends.litellm_backend import LiteLLMBackend
    from simlab.backends.llamacpp import LlamaCppBackend
    from simlab.backends.mock import MockBackend
    from simlab.backends.vllm_backend import VLLMBackend

_LAZY = {
    "MockBackend": "simlab.backends.mock",
    "LlamaCppBackend": "simlab.backends.llamacpp",
    "LiteLLMBackend": "simlab.backends.litellm_backend",
    "TransformersBackend": "simlab.backends.hf",
    "VLLMBackend": "simlab.backends.vllm_backend",
}

__all__ = [
    "Backend",
    "BackendError",
    "ChatRequest",
    "ChatResponse",
    "LiteLLMBackend",
    "LlamaCppBackend",
    "Message",
    "MockBackend",
    "TransformersBackend",
    "VLLMBackend",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
