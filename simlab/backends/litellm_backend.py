"""Remote models through litellm: any hosted or self-hosted endpoint, a batch at a time.

Batches run on one asyncio loop in a daemon thread shared by the process (pools stay warm
between ticks, litellm's loop-bound clients stay valid, notebooks work), under an
in-flight cap and optional rpm/tpm buckets. Failures come back as responses, ``transient``
where a retry can help; retrying is the retry wrapper's job, so litellm's is off.

litellm costs 6-9 ms of CPU a call (transformation, OpenAI SDK, logging and cost hooks),
so OpenAI-compatible servers (``openai/…``, ``hosted_vllm/…`` with an ``api_base``) are
called directly by default (``transport="auto"``): orjson bodies over a lean keep-alive
HTTP/1.1 pool (:mod:`simlab.backends.http1`), ~0.05 ms of CPU a call where aiohttp's
client took ~0.3 ms, on a uvloop loop when uvloop is installed.

The API key comes only from the variable named by ``api_key_env``, read per batch; it is
never stored, described or logged.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

import orjson

from simlab.backends.base import Backend, BackendError, ChatRequest, ChatResponse, Message
from simlab.backends.http1 import HTTP1Pool
from simlab.backends.litellm_adapter import flush_logging_worker, import_litellm, response_cost
from simlab.backends.ratelimit import RateLimiter, estimate_tokens
from simlab.backends.schema import parse_reply

Transport = Literal["auto", "litellm", "direct"]
_Reply = tuple[str, int, int, str, float]  # text, prompt/completion tokens, finish, cost
OPENAI_COMPATIBLE = frozenset({"openai", "hosted_vllm"})
#: The window assumed for a model litellm does not know and the config does not name:
#: small enough for today's self-hosted servers, so a view is trimmed rather than refused.
DEFAULT_WINDOW = 4096
_SECRETISH = ("key", "token", "secret", "password", "auth")
_NO_KEY = "no-key"  # custom servers get this, never an unrelated key from the environment


_LOOP: tuple[int, asyncio.AbstractEventLoop, threading.Thread] | None = None
_LOOP_LOCK = threading.Lock()
_HOOKED = False  # stop_shared_loop is registered with atexit at the first loop start


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (its timers and socket callbacks cost less CPU), else asyncio's.

    ``SIMLAB_UVLOOP=0`` keeps asyncio's loop (to compare, or to rule uvloop out).
    """
    if os.environ.get("SIMLAB_UVLOOP", "1") != "0":
        with contextlib.suppress(ImportError):
            import uvloop

            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def shared_loop() -> asyncio.AbstractEventLoop:
    """The process's one backend loop, in a daemon thread (restarted after a fork)."""
    global _LOOP, _HOOKED
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP[0] != os.getpid() or not _LOOP[2].is_alive():
            if not _HOOKED:  # at the first start, not at import
                atexit.register(stop_shared_loop)
                _HOOKED = True
            loop = new_loop()
            thread = threading.Thread(target=loop.run_forever, name="simlab-lm", daemon=True)
            thread.start()
            _LOOP = (os.getpid(), loop, thread)
        return _LOOP[1]


def stop_shared_loop(timeout: float = 5.0) -> None:
    """Stop the backend loop and its executor threads before interpreter teardown.

    Left running, the daemon loop thread (and uvloop's resolver threads) are still in C
    code while the interpreter finalizes, an exit-time crash risk for a run that has
    already finished. Registered with ``atexit`` when the first loop starts; a later
    :func:`shared_loop` call starts a fresh one.
    """
    global _LOOP
    with _LOOP_LOCK:
        entry, _LOOP = _LOOP, None
    if entry is None or entry[0] != os.getpid():
        return
    _, loop, thread = entry
    if thread.is_alive():
        with contextlib.suppress(RuntimeError):  # already closed
            fut = asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop)
            with contextlib.suppress(Exception):
                fut.result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
    if not thread.is_alive() and not loop.is_closed():
        loop.close()



class ReplyError(RuntimeError):
    """Direct path: an HTTP error status, or (``status_code`` None) a body that is no reply."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def is_transient(exc: BaseException) -> bool:
    """Whether retrying could help: timeouts, connection loss, 408/429, 5xx, bad bodies."""
    lt = import_litellm()
    if isinstance(exc, (lt.Timeout, lt.APIConnectionError, lt.RateLimitError,
                        lt.InternalServerError, lt.ServiceUnavailableError)):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in (408, 429) or status >= 500
    from aiohttp import ClientError

    return isinstance(exc, (TimeoutError, ConnectionError, ClientError, ReplyError))


#: HTTP statuses that say the endpoint will refuse every call: bad or missing key,
#: no permission, no such model or route.
FATAL_STATUSES = frozenset({401, 403, 404})


def is_fatal(exc: BaseException) -> bool:
    """Whether no later call can succeed either (the run should stop, not go on)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in FATAL_STATUSES
    lt = import_litellm()
    return isinstance(exc, (lt.AuthenticationError, lt.PermissionDeniedError,
                            lt.NotFoundError))


class LiteLLMBackend(Backend):
    """Any litellm model string, e.g. ``openai/gpt-4o-mini`` or ``hosted_vllm/llama``.

    ``api_key_env`` names the variable holding the key; without it a hosted provider uses
    litellm's own (``OPENAI_API_KEY`` …) and a custom ``api_base`` gets none. ``rpm``/``tpm``
    are client-side limits. ``extra`` adds ``litellm.acompletion`` arguments (direct path:
    JSON body fields, e.g. vLLM's ``top_k``), never overriding what a request sets.
    ``transport``: auto (direct for an OpenAI-compatible ``api_base``), litellm or direct.
    ``context_window``: the model's window in tokens; None = litellm's known limit for
    the model, else :data:`DEFAULT_WINDOW` (set it for a self-hosted server). Tokens are
    counted with ``litellm.token_counter`` (the model's tokenizer where litellm has it,
    else tiktoken's cl100k).
    """

    name = "litellm"

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        max_in_flight: int = 64,
        rpm: int | None = None,
        tpm: int | None = None,
        extra: dict[str, Any] | None = None,
        transport: Transport = "auto",
        context_window: int | None = None,
    ) -> None:
        problems = [
            (not model, "model: a litellm model string is required"),
            (max_in_flight < 1, f"max_in_flight: must be >= 1, got {max_in_flight}"),
            (timeout_s <= 0, f"timeout_s: must be > 0, got {timeout_s}"),
            (transport not in ("auto", "litellm", "direct") or (
                transport == "direct" and not api_base),
             f"transport: {transport!r} is not auto, litellm, or direct with an api_base"),
            (context_window is not None and context_window < 1,
             f"context_window: must be >= 1, got {context_window}"),
        ]
        for bad, message in problems:
            if bad:
                raise BackendError(f"backend.{message}")
        self.model, self.api_base, self.api_key_env = model, api_base, api_key_env
        self.timeout_s, self.max_in_flight = timeout_s, max_in_flight
        self.rpm, self.tpm, self.extra = rpm, tpm, dict(extra or {})
        self._key()  # fail now, naming the variable, not on the first tick
        provider, _, self._bare_model = model.partition("/")
        auto = transport == "auto" and provider in OPENAI_COMPATIBLE and bool(api_base)
        self.transport = "direct" if transport == "direct" or auto else "litellm"
        self._lt = import_litellm()
        self._loop = shared_loop()
        self._sem = asyncio.Semaphore(max_in_flight)
        self._limiter = RateLimiter(rpm, tpm)
        try:
            self._pool = HTTP1Pool(str(api_base)) if self.transport == "direct" else None
        except ValueError as exc:
            raise BackendError(f"backend.{exc}") from None
        self._priced = True  # False once litellm says it has no price for this model
        entry = self._lt.model_cost.get(model) or self._lt.model_cost.get(self._bare_model) or {}
        cin, cout = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        self._prices = (float(cin), float(cout)) if cin and cout else None  # direct path
        known = entry.get("max_input_tokens") or entry.get("max_tokens")
        self.window_source = ("config" if context_window else "litellm" if known
                              else "default")
        self._window = int(context_window or known or DEFAULT_WINDOW)

    @property
    def context_window(self) -> int:
        return self._window

    def count_text(self, text: str) -> int:
        return int(self._lt.token_counter(model=self.model, text=text))

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return int(self._lt.token_counter(model=self.model,
                                          messages=[m.as_dict() for m in messages]))

    @property
    def model_id(self) -> str:
        return self.model

    def describe(self) -> dict[str, Any]:
        fields = ("api_base", "api_key_env", "timeout_s", "max_in_flight", "rpm", "tpm",
                  "transport")  # api_key_env is the variable's name, never its value
        extra = {k: "***" if any(w in k.lower() for w in _SECRETISH) else v
                 for k, v in self.extra.items()}
        return {**super().describe(), **{f: getattr(self, f) for f in fields}, "extra": extra,
                "context_window": self._window, "context_window_source": self.window_source}

    def fingerprint(self) -> dict[str, Any]:
        """Model, endpoint and pass-through arguments: two servers serving one model name
        give different replies. Secret-looking ``extra`` keys are left out, not hashed."""
        extra = {k: v for k, v in self.extra.items()
                 if not any(w in k.lower() for w in _SECRETISH)}
        return {**super().fingerprint(), "api_base": self.api_base, "extra": extra}

    def _key(self) -> str | None:
        if self.api_key_env is None:
            return _NO_KEY if self.api_base else None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise BackendError(f"backend.api_key_env: environment variable "
                               f"{self.api_key_env} is not set (it should hold the API key)")
        return key

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        if not requests:
            return []
        try:
            key = self._key()
        except BackendError as exc:
            return [ChatResponse(text="", error=str(exc), model=self.model, fatal=True)
                    for _ in requests]
        batch = self._batch(list(requests), key)
        return asyncio.run_coroutine_threadsafe(batch, self._loop).result()

    async def _batch(self, requests: list[ChatRequest], key: str | None) -> list[ChatResponse]:
        head = None  # direct: the request head, built per batch so the key is never kept
        if self._pool is not None:
            auth = {"Authorization": f"Bearer {key}"} if key and key != _NO_KEY else {}
            try:
                head = self._pool.request_head("/chat/completions", auth)
            except ValueError:  # a line break in the key: it would split the header
                error = f"backend.api_key_env: the value of {self.api_key_env} has a line break"
                return [ChatResponse(text="", error=error, model=self.model, fatal=True)
                        for _ in requests]
        out: list[Any] = [None] * len(requests)
        todo = iter(range(len(requests)))

        async def worker() -> None:  # at most max_in_flight tasks, not one per request
            for i in todo:
                out[i] = await self._one(requests[i], key, head)

        await asyncio.gather(*(worker() for _ in range(min(self.max_in_flight, len(requests)))))
        if self.transport == "litellm":
            await flush_logging_worker()  # on this loop, not replayed at exit on another
        return out

    async def _one(self, request: ChatRequest, key: str | None, head: bytes | None
                   ) -> ChatResponse:
        limited = self._limiter.active
        estimate = estimate_tokens(request) if limited else 0
        async with self._sem:
            if limited:
                await self._limiter.acquire(estimate)
            start = time.perf_counter()
            try:
                reply = await (self._via_litellm(request, key) if head is None
                               else self._direct(request, head))
                text, prompt_tokens, completion_tokens, finish, cost = reply
            except Exception as exc:  # never raise out of generate()
                status = getattr(exc, "status_code", None)
                where = f" (HTTP {status})" if isinstance(status, int) else ""
                detail = str(exc) or f"no reply in {self.timeout_s} s"
                message = f"{type(exc).__name__}{where}: {detail}"[:600]
                if key and key != _NO_KEY:
                    message = message.replace(key, "***")
                return ChatResponse(text="", error=message, transient=is_transient(exc),
                                    fatal=is_fatal(exc), latency_s=time.perf_counter() - start,
                                    model=self.model)
            latency = time.perf_counter() - start
        if limited:
            self._limiter.settle(estimate, prompt_tokens + completion_tokens)
        parsed, error = None, ""
        if request.json_schema is not None:
            parsed, error = parse_reply(text, request.json_schema)
        return ChatResponse(text=text, prompt_tokens=prompt_tokens,
                            completion_tokens=completion_tokens, latency_s=latency,
                            finish_reason=finish, model=self.model, parsed=parsed, error=error,
                            cost_usd=cost)

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"messages": request.messages_dicts(),
                                  "max_tokens": request.max_tokens,
                                  "temperature": request.temperature, "top_p": request.top_p}
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if request.json_schema is not None:
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "action", "schema": request.json_schema, "strict": True}}
        return params

    # ------------------------------------------------------------ transports
    async def _completion(self, request: ChatRequest, key: str | None) -> Any:
        """One call through litellm (a Router's, in :mod:`~simlab.backends.litellm_router`)."""
        return await self._lt.acompletion(**{
            **self.extra, **self._params(request), "model": self.model,
            "api_base": self.api_base, "api_key": key, "timeout": self.timeout_s,
            "num_retries": 0, "max_retries": 0})

    async def _via_litellm(self, request: ChatRequest, key: str | None) -> _Reply:
        resp = await self._completion(request, key)
        choice, usage = resp.choices[0], getattr(resp, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        return (choice.message.content or "", prompt, completion, choice.finish_reason or "",
                self._litellm_cost(resp))

    def _litellm_cost(self, resp: Any) -> float:
        cost = response_cost(resp)
        if cost is not None or not self._priced:
            return cost or 0.0
        try:
            return float(self._lt.completion_cost(completion_response=resp))
        except Exception:  # unknown model price: litellm raises; remember and skip
            self._priced = False
            return 0.0

    async def _direct(self, request: ChatRequest, head: bytes) -> _Reply:
        body = {**self.extra, **self._params(request), "model": self._bare_model}
        assert self._pool is not None
        status, raw = await self._pool.post(head, _dumps(body), self.timeout_s)
        if status >= 400:
            raise ReplyError(_error_message(raw), status)
        try:
            data = orjson.loads(raw)
            choice, usage = data["choices"][0], data.get("usage") or {}
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ReplyError(f"not a chat completion ({exc}): {raw[:80]!r}") from None
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        price = self._prices  # linear per-token prices from litellm's table, if listed
        cost = price[0] * prompt + price[1] * completion if price else 0.0
        return text, prompt, completion, choice.get("finish_reason") or "", cost

    def close(self) -> None:
        if self._pool is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._pool.close)  # transports: loop thread only


def _dumps(body: dict[str, Any]) -> bytes:
    """orjson (~10× json's speed); json for what orjson refuses (e.g. huge ints in extra)."""
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(body, ensure_ascii=False).encode()


def _error_message(raw: bytes) -> str:
    try:
        err = orjson.loads(raw).get("error")
        return str(err.get("message") if isinstance(err, dict) else err)[:300]
    except (ValueError, AttributeError):
        return raw[:300].decode("utf-8", "replace")
