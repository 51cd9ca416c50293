"""Where simlab reaches into transformers and gguf-py: a faster GGUF load.

transformers 5.x parses a GGUF file (SmolLM2's 49k-entry vocab: seconds) three times while
loading a tokenizer and model from it, and rebuilds gguf's tensor-name map once per
submodule (~400 times). Both ``gguf.GGUFReader`` and ``gguf.get_tensor_name_map`` are pure
for a given file and architecture, so while a model loads :func:`fast_gguf_load` puts
memoised versions on the ``gguf`` module (~4x faster import). That works only because
``transformers.modeling_gguf_pytorch_utils`` looks them up on ``gguf`` at call time
(``from gguf import …`` inside its functions); :func:`supported` checks exactly that.

Checked against ``CHECKED_VERSIONS`` (``make install`` pins one of each in
``constraints.txt``);
``tests/test_backend_hf.py::test_adapter_matches_installed_transformers_and_gguf`` fails
loudly if an upgrade moves any of it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Iterator
from typing import Any

CHECKED_VERSIONS: dict[str, tuple[str, ...]] = {
    "transformers": ("5.24.0", "5.25.0"),
    "gguf": ("0.19.0",),
}
#: The gguf functions swapped while loading, and how transformers imports each.
PATCHED = {"GGUFReader": "from gguf import GGUFReader",
           "get_tensor_name_map": "from gguf import MODEL_ARCH_NAMES, get_tensor_name_map"}
_LOCK = threading.Lock()


@contextlib.contextmanager
def fast_gguf_load() -> Iterator[None]:
    """Within the block, the two gguf calls above are memoised; restored after it.

    Loads that use it are serialised, so other threads see the swap only inside a block.
    """
    import gguf

    with _LOCK:
        real = {name: getattr(gguf, name) for name in PATCHED}
        for name, function in real.items():
            setattr(gguf, name, functools.cache(function))
        try:
            yield
        finally:
            for name, function in real.items():
                setattr(gguf, name, function)


def supported(gguf: Any, gguf_utils: Any) -> list[str]:
    """What this adapter relies on that the given ``gguf`` module and
    ``transformers.modeling_gguf_pytorch_utils`` lack; empty if all is there."""
    missing = [f"gguf.{name}" for name in PATCHED if not callable(getattr(gguf, name, None))]
    try:
        source = inspect.getsource(gguf_utils)
    except (TypeError, OSError):
        return [*missing, "modeling_gguf_pytorch_utils source"]
    for name, line in PATCHED.items():
        if hasattr(gguf_utils, name):  # bound at import: a swap on gguf would not reach it
            missing.append(f"modeling_gguf_pytorch_utils.{name} bound at import")
        elif line not in source:
            missing.append(f"modeling_gguf_pytorch_utils: {line!r}")
    return missing


def cache_name() -> str:
    """The name ``generate`` takes a KV cache under, and returns it as: ``cache`` where
    transformers has renamed ``past_key_values`` (5.25 warns at the old name)."""
    from transformers.utils import generic

    return "cache" if hasattr(generic.ModelOutput, "_replace_old_cache_name") else (
        "past_key_values")
