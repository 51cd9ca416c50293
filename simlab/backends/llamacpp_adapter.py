"""Where simlab reaches into llama-cpp-python internals: model parameters it has no
argument for, the KV-cache bookkeeping it trims, token texts it reads.

``llama_cpp.Llama`` builds its ``llama_model_params`` from
``llama_cpp.llama_cpp.llama_model_default_params()`` inside ``__init__`` and loads the
model straight after, with no keyword for ``use_extra_bufts`` (the switch that turns
llama.cpp's weight repacking off; see :mod:`simlab.backends.cpu`). So while a model loads,
:func:`model_params` wraps that factory to return parameters with the field set.

Checked against llama-cpp-python 0.3.36 (``CHECKED_VERSIONS``);
``tests/test_cpu_repack.py::test_adapter_matches_installed_llama_cpp`` fails loudly if an
upgrade moves any of it.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Iterator, Sequence
from typing import Any

CHECKED_VERSIONS = ("0.3.36",)
_PATCH_LOCK = threading.Lock()


def supported(llama_cpp: Any) -> list[str]:
    """What this adapter needs from the installed package; an empty list if all is there."""
    return _params_missing(llama_cpp) + _cache_missing(llama_cpp)


#: Source fragments of ``Llama`` that the cache functions rely on (checked by the test).
_SOURCE = {
    "__init__": ("self.n_tokens = 0", "self.input_ids", "self._model = "),
    "generate": ("if reset and self.n_tokens > 0", "self._input_ids"),
}


def _cache_missing(llama_cpp: Any) -> list[str]:
    llama = getattr(llama_cpp, "Llama", None)
    missing = [f"Llama.{name}" for name in ("reset", "create_completion", "generate")
               if not callable(getattr(llama, name, None))]
    for method, fragments in _SOURCE.items():
        try:
            source = inspect.getsource(getattr(llama, method))
        except (TypeError, OSError, AttributeError):
            missing.append(f"Llama.{method} source")
            continue
        missing += [f"Llama.{method}: {f!r}" for f in fragments if f not in source]
    model = getattr(getattr(llama_cpp, "_internals", None), "LlamaModel", None)
    missing += [f"_internals.LlamaModel.{name}" for name in ("token_get_text", "add_bos_token")
                if not callable(getattr(model, name, None))]
    grammar = getattr(llama_cpp, "llama_grammar", None)
    if not callable(getattr(grammar, "json_schema_to_gbnf", None)):
        missing.append("llama_grammar.json_schema_to_gbnf")
    return missing


def _params_missing(llama_cpp: Any) -> list[str]:
    missing = []
    low = getattr(llama_cpp, "llama_cpp", None)
    if low is None or not callable(getattr(low, "llama_model_default_params", None)):
        missing.append("llama_cpp.llama_cpp.llama_model_default_params")
    else:
        names = [name for name, _ in getattr(low.llama_model_params, "_fields_", [])]
        if "use_extra_bufts" not in names:
            missing.append("llama_model_params.use_extra_bufts")
    return missing


def _require(llama_cpp: Any) -> None:
    missing = _params_missing(llama_cpp)
    if missing:
        raise RuntimeError(
            f"llama-cpp-python {getattr(llama_cpp, '__version__', '?')} lacks {missing}; "
            f"simlab's adapter was checked against {CHECKED_VERSIONS}: cannot turn weight "
            "repacking off (set backend.cpu_repack=on, or install a checked version)")


@contextlib.contextmanager
def model_params(llama_cpp: Any, *, use_extra_bufts: bool) -> Iterator[None]:
    """Within the block, new ``Llama`` objects load with ``use_extra_bufts`` set.

    A no-op when the default (``True``) is asked for. Loads that need the patch are
    serialised, so concurrent loads in other threads see it only inside the block.
    """
    if use_extra_bufts:
        yield
        return
    _require(llama_cpp)
    low = llama_cpp.llama_cpp
    with _PATCH_LOCK:
        original = low.llama_model_default_params
        low.llama_model_default_params = _setting(original, use_extra_bufts)
        try:
            yield
        finally:
            low.llama_model_default_params = original


def loaded_extra_bufts(llm: Any) -> bool | None:
    """What a loaded ``Llama`` was actually given (``None`` if it does not say)."""
    params = getattr(llm, "model_params", None)
    value = getattr(params, "use_extra_bufts", None)
    return None if value is None else bool(value)


def install_for_process(llama_cpp: Any, *, use_extra_bufts: bool) -> None:
    """Make every later load in this process use ``use_extra_bufts`` (for the server
    launcher, which is a process of its own)."""
    if use_extra_bufts:
        return
    _require(llama_cpp)
    low = llama_cpp.llama_cpp
    low.llama_model_default_params = _setting(low.llama_model_default_params, False)


def _setting(factory: Any, use_extra_bufts: bool) -> Any:
    """``factory`` (the default-parameters function) with ``use_extra_bufts`` set."""

    def patched() -> Any:
        params = factory()
        params.use_extra_bufts = use_extra_bufts
        return params

    return patched


def cached_tokens(llm: Any) -> Sequence[int]:
    """The tokens whose KV the context holds now, in order."""
    return llm.input_ids[: llm.n_tokens]


def keep_cached(llm: Any, keep: int) -> None:
    """Let the next completion reuse the KV of only the first ``keep`` cached tokens
    (``0``: none, a full reset)."""
    if keep <= 0:
        llm.reset()
    else:
        llm.n_tokens = keep


def token_text(llm: Any, token: int) -> str:
    """A token's text (e.g. ``"<|im_start|>"`` for a special token)."""
    return llm._model.token_get_text(token)


def adds_bos(llm: Any) -> bool:
    """Whether the model asks for a BOS token at the start of a prompt."""
    return bool(llm._model.add_bos_token())


def model_pointer(llm: Any) -> Any:
    """The ``llama_model *`` of a loaded ``Llama`` (the batch engine's contexts share it)."""
    return llm._model.model


def grammar_text(llama_cpp: Any, schema_json: str) -> str:
    """The GBNF grammar llama-cpp-python derives from a JSON schema."""
    return llama_cpp.llama_grammar.json_schema_to_gbnf(schema_json)


def set_log_verbosity(llama_cpp: Any, verbose: bool) -> None:
    """Show llama.cpp's own log lines only when ``verbose`` (errors always), as ``Llama``
    does for itself; for low-level calls made before any ``Llama`` exists."""
    llama_cpp._logger.set_verbose(verbose)


_BATCH_FUNCTIONS = (
    "llama_batch_free", "llama_batch_init", "llama_context_default_params", "llama_decode",
    "llama_free", "llama_get_memory", "llama_init_from_model", "llama_memory_seq_rm",
    "llama_model_get_vocab", "llama_sampler_chain_add", "llama_sampler_chain_default_params",
    "llama_sampler_chain_init", "llama_sampler_free", "llama_sampler_init_dist",
    "llama_sampler_init_grammar", "llama_sampler_init_greedy", "llama_sampler_init_min_p",
    "llama_sampler_init_penalties", "llama_sampler_init_temp", "llama_sampler_init_top_k",
    "llama_sampler_init_top_p", "llama_sampler_sample", "llama_state_seq_get_data",
    "llama_state_seq_get_size", "llama_state_seq_set_data", "llama_token_to_piece",
    "llama_vocab_is_eog", "llama_vocab_n_tokens", "llama_sampler_apply",
    "llama_sampler_accept", "llama_get_logits_ith", "llama_token_data",
    "llama_token_data_array")
_BATCH_CONTEXT_FIELDS = ("n_ctx", "n_batch", "n_ubatch", "n_seq_max", "kv_unified",
                   "flash_attn_type", "n_threads", "n_threads_batch", "no_perf")


def batch_supported(llama_cpp: Any) -> list[str]:
    """What the batch engine (:mod:`simlab.backends.llamacpp_batch`) needs from the
    installed llama_cpp; an empty list if all is there."""
    missing = [f for f in _BATCH_FUNCTIONS if not callable(getattr(llama_cpp, f, None))]
    params = getattr(llama_cpp, "llama_context_params", None)
    names = {name for name, _ in getattr(params, "_fields_", [])}
    missing += [f"llama_context_params.{f}" for f in _BATCH_CONTEXT_FIELDS if f not in names]
    if not hasattr(llama_cpp, "LLAMA_FLASH_ATTN_TYPE_DISABLED"):
        missing.append("LLAMA_FLASH_ATTN_TYPE_DISABLED")
    return missing
