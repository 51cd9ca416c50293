"""vLLM in-process offline batching: one tick's batch is one ``LLM.generate`` call.

vLLM schedules the whole batch itself (continuous batching) and, with prefix caching on,
reuses the KV of prompt prefixes that agents share (system prompt, persona, the growing
egocentric view), which is most of each prompt in a dialogue. Prompts are token ids built
with the model's chat template through :mod:`simlab.backends.templating`, so message text
can never forge role markers. ``json_schema`` becomes guided decoding, and the reply is
still validated with :func:`~simlab.backends.schema.parse_reply`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from simlab.backends.base import Backend, BackendError, ChatRequest, ChatResponse
from simlab.backends.hf import hf_chat_template
from simlab.backends.schema import parse_reply
from simlab.backends.templating import ChatTemplate
from simlab.backends.tokens import TemplateCounting

PIP_HINT = "pip install 'simlab[vllm]'"


def import_vllm() -> Any:
    """The ``vllm`` module, or a :class:`BackendError` naming the extra to install."""
    try:
        import vllm
    except ImportError as exc:
        raise BackendError(f"the vllm backend needs vLLM (CUDA GPU): {PIP_HINT}") from exc
    return vllm


def engine_kwargs(
    model: str,
    *,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.85,
    max_model_len: int | None = None,
    enable_prefix_caching: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM``; prefix caching is what makes agent prompts cheap."""
    kwargs: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
        "enable_prefix_caching": enable_prefix_caching,
        "seed": seed,
    }
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    return kwargs


def structured_kwargs(vllm: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """``SamplingParams`` keywords for JSON-schema guided decoding, by feature detection.

    vLLM >= 0.10.2 has ``StructuredOutputsParams`` (``structured_outputs=``); 0.12 removed
    the older ``GuidedDecodingParams`` (``guided_decoding=``).
    """
    params = vllm.sampling_params
    if hasattr(params, "StructuredOutputsParams"):
        return {"structured_outputs": params.StructuredOutputsParams(json=schema)}
    if hasattr(params, "GuidedDecodingParams"):
        return {"guided_decoding": params.GuidedDecodingParams(json=schema)}
    raise BackendError("this vLLM has neither StructuredOutputsParams nor GuidedDecodingParams")


def sampling_kwargs(request: ChatRequest, default_seed: int) -> dict[str, Any]:
    """Per-request sampling: vLLM seeds each request itself, so batching never changes it."""
    return {
        "temperature": max(0.0, request.temperature),  # 0 is greedy in vLLM
        "top_p": request.top_p,
        "max_tokens": max(1, request.max_tokens),
        "seed": default_seed if request.seed is None else request.seed,
        "stop": list(request.stop),
    }


class VLLMBackend(TemplateCounting, Backend):
    """Batched generation with vLLM's offline ``LLM`` engine (CUDA GPU).

    ``latency_s`` of each response is the batch's wall time divided by its size: vLLM runs
    the requests together, so no single request has a latency of its own.

    Args:
        model: HF hub id or local directory (vLLM's own download rules apply).
        tensor_parallel_size, gpu_memory_utilization, max_model_len: passed to ``vllm.LLM``.
        enable_prefix_caching: reuse KV across prompts that share a prefix (keep it on).
        seed: engine seed, and the seed of requests whose ``seed`` is None.
        engine: an object with vLLM's ``generate(prompts, sampling_params, use_tqdm=)`` and
            ``get_tokenizer()``, used instead of building ``vllm.LLM`` (tests, shared engines).
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        engine: Any = None,
    ) -> None:
        self._vllm = import_vllm()
        self.model, self.seed = model, seed
        self.engine_kwargs = engine_kwargs(
            model,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching,
            seed=seed,
        )
        if engine is None:
            try:
                engine = self._vllm.LLM(**self.engine_kwargs)
            except Exception as exc:
                raise BackendError(f"vLLM could not start {model}: {exc}") from exc
        self._llm = engine
        self._template = hf_chat_template(engine.get_tokenizer())
        config = getattr(getattr(engine, "llm_engine", None), "model_config", None)
        self.max_model_len = getattr(config, "max_model_len", None) or max_model_len
        # TokensPrompt is a TypedDict (vllm.inputs, re-exported): a dict where it is absent.
        self._tokens_prompt: Any = getattr(self._vllm, "TokensPrompt", dict)

    @property
    def model_id(self) -> str:
        return f"vllm/{self.model}"

    @property
    def context_window(self) -> int | None:
        """vLLM's own ``max_model_len`` (what it derived from the model, or was given)."""
        return self.max_model_len

    @property
    def template(self) -> ChatTemplate:
        """The bound chat template (exposed for tests and prompt inspection)."""
        return self._template

    def describe(self) -> dict[str, Any]:
        version = getattr(self._vllm, "__version__", "unknown")
        return {**super().describe(), **self.engine_kwargs, "vllm": version}

    def fingerprint(self) -> dict[str, Any]:
        from simlab.backends.fingerprint import file_identity

        keep = {k: v for k, v in self.engine_kwargs.items()
                if k not in ("gpu_memory_utilization", "enable_prefix_caching")}
        return {**super().fingerprint(), **keep, "model_file": file_identity(self.model)}

    def _params(self, request: ChatRequest) -> Any:
        kwargs = sampling_kwargs(request, self.seed)
        if request.json_schema is not None:
            kwargs |= structured_kwargs(self._vllm, request.json_schema)
        return self._vllm.SamplingParams(**kwargs)

    def _error(self, message: str, latency: float = 0.0) -> ChatResponse:
        return ChatResponse(
            text="", error=message, model=self.model_id, finish_reason="error", latency_s=latency
        )

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        out: list[ChatResponse | None] = [None] * len(requests)
        index, prompts, params, lengths = [], [], [], []
        for i, request in enumerate(requests):
            try:
                ids = self._template.encode(request.messages_dicts()).ids
                params.append(self._params(request))
            except Exception as exc:  # a per-request failure is recorded, never raised
                out[i] = self._error(f"{type(exc).__name__}: {exc}")
                continue
            index.append(i)
            prompts.append(self._tokens_prompt(prompt_token_ids=ids))
            lengths.append(len(ids))
        if prompts:
            start, error = time.perf_counter(), ""
            try:
                results = self._llm.generate(prompts, params, use_tqdm=False)
            except Exception as exc:
                results, error = None, f"{type(exc).__name__}: {exc}"
            latency = (time.perf_counter() - start) / len(prompts)
            for k, i in enumerate(index):
                if results is None:
                    out[i] = self._error(error, latency)
                else:
                    out[i] = self._response(requests[i], results[k], lengths[k], latency)
        return [r for r in out if r is not None]

    def _response(
        self, request: ChatRequest, result: Any, n_prompt: int, latency: float
    ) -> ChatResponse:
        choice = result.outputs[0]  # vLLM strips stop strings; token_ids may end with EOS
        text = choice.text
        parsed, error = None, ""
        if request.json_schema is not None:
            parsed, error = parse_reply(text, request.json_schema)
        prompt_ids = getattr(result, "prompt_token_ids", None)
        return ChatResponse(
            text=text,
            prompt_tokens=len(prompt_ids) if prompt_ids is not None else n_prompt,
            completion_tokens=len(choice.token_ids),
            latency_s=latency,
            finish_reason=choice.finish_reason or "stop",
            model=self.model_id,
            parsed=parsed,
            error=error,
        )
