"""A small OpenAI-compatible chat-completions server for tests and benchmarks.

Tests of the litellm backend need a real HTTP endpoint (so litellm's whole client path
runs) that is offline, fast, deterministic and can misbehave on demand. aiohttp serves any
number of requests at once, so ``latency_s`` models a slow provider without limiting
concurrency, and ``/stats`` reports the peak concurrency the client actually reached.

Replies are a pure function of the request (:func:`completion_for`): ``"echo: <last
message>"`` cut to ``max_tokens`` words, or a valid instance of a requested JSON schema.
Token counts are whitespace word counts, so tests can assert exact numbers.

In a thread::

    with serve(latency_s=0.1, fault_rate=0.2, seed=1) as base_url:  # ".../v1"
        ...
        stats(base_url)  # {"requests": …, "peak_concurrency": …, "faults": {…}, …}

As a process (what benchmarks use, so the server does not share the client's GIL)::

    python tests/servers/fake_openai.py --latency 0.2   # prints the base URL, then serves
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from simlab.backends.schema import example_instance

#: Fault kinds drawn by ``fault_rate``: HTTP 429, HTTP 500, a reply slower than any sane
#: client timeout, and a 200 whose JSON body is cut off.
FAULTS = ("429", "500", "timeout", "malformed")
#: Client errors a test can ask for explicitly (never worth a retry).
CLIENT_FAULTS = ("400", "401")


def _schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema") or {}
    return None


def completion_for(body: dict[str, Any]) -> tuple[str, int, int, str]:
    """``(text, prompt_tokens, completion_tokens, finish_reason)`` for a request body."""
    messages = body.get("messages") or []
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
    schema = _schema_of(body)
    if schema is not None:
        text = json.dumps(example_instance(schema, random.Random(body.get("seed") or 0)))
        finish = "stop"
    else:
        last = str(messages[-1].get("content", "")) if messages else ""
        words = ["echo:", *last.split()]
        limit = int(body.get("max_tokens") or 16)
        finish = "length" if len(words) > limit else "stop"
        text = " ".join(words[:limit])
    return text, prompt_tokens, len(text.split()), finish


class FakeOpenAI:
    """The server's state and handlers; one instance per server."""

    def __init__(
        self,
        latency_s: float = 0.0,
        fault_rate: float = 0.0,
        faults: Sequence[str] = FAULTS,
        seed: int = 0,
        hang_s: float = 30.0,
    ) -> None:
        unknown = set(faults) - set(FAULTS + CLIENT_FAULTS)
        if unknown or not faults:
            raise ValueError(f"faults must be a non-empty subset of {FAULTS + CLIENT_FAULTS}, "
                             f"got {faults}")
        self.latency_s = latency_s
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.seed = seed
        self.hang_s = hang_s
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.seed)
        self.requests = 0
        self.in_flight = 0
        self.peak = 0
        self.fault_counts: Counter[str] = Counter()
        self.arrivals: list[float] = []
        self.keys: set[str] = set()  # bearer tokens seen, so tests can check what was sent
        self.t0 = time.monotonic()  # arrival times are reported from here (start or reset)
        self.cpu0 = time.process_time()

    def app(self) -> web.Application:
        app = web.Application()
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/chat/completions", self.chat)
            app.router.add_get(f"{prefix}/models", self.models)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/stats/reset", self.reset_handler)
        return app

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "peak_concurrency": self.peak,
            "in_flight": self.in_flight,
            "faults": {k: self.fault_counts[k] for k in FAULTS + CLIENT_FAULTS},
            "keys": sorted(self.keys),
            "arrival_s": [round(t - self.t0, 4) for t in self.arrivals],
            "cpu_s": round(time.process_time() - self.cpu0, 4),  # this process, since reset
        }

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def reset_handler(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.arrivals.append(time.monotonic())
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            self.keys.add(auth.removeprefix("Bearer "))
        try:
            body = await request.json()
            fault = None
            if self.fault_rate > 0 and self.rng.random() < self.fault_rate:
                fault = self.rng.choice(self.faults)
                self.fault_counts[fault] += 1
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if fault == "429":
                return _error(429, "rate_limit_exceeded", "Rate limit reached (fake)")
            if fault == "500":
                return _error(500, "server_error", "Internal error (fake)")
            if fault == "400":
                return _error(400, "invalid_request_error", "Bad request (fake)")
            if fault == "401":
                return _error(401, "invalid_api_key", "Incorrect API key (fake)")
            if fault == "timeout":
                await asyncio.sleep(self.hang_s)
            reply = self._reply(body)
            if fault == "malformed":
                cut = json.dumps(reply)[:40]
                return web.Response(text=cut, content_type="application/json")
            return web.json_response(reply)
        finally:
            self.in_flight -= 1

    def _reply(self, body: dict[str, Any]) -> dict[str, Any]:
        text, prompt_tokens, completion_tokens, finish = completion_for(body)
        return {
            "id": f"chatcmpl-fake-{self.requests}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"error": {"message": message, "type": code, "code": code}}
    return web.json_response(body, status=status)


def _bind(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)  # benchmarks open hundreds of connections at once
    return sock


async def _start(server: FakeOpenAI, sock: socket.socket) -> web.AppRunner:
    # handler_cancellation: a client that gives up (timeout fault) frees its slot at once.
    runner = web.AppRunner(server.app(), access_log=None, handler_cancellation=True,
                           shutdown_timeout=0.2)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


@contextmanager
def serve(
    latency_s: float = 0.0,
    fault_rate: float = 0.0,
    faults: Sequence[str] = FAULTS,
    seed: int = 0,
    hang_s: float = 30.0,
    subprocess_: bool = False,
) -> Iterator[str]:
    """Run a server on a free 127.0.0.1 port for the ``with`` block; yield its ``/v1`` URL.

    ``subprocess_=True`` runs it in a child process (own GIL, for benchmarks); otherwise
    it runs on an event loop in a daemon thread of this process.
    """
    if subprocess_:
        yield from _serve_process(latency_s, fault_rate, faults, seed, hang_s)
        return
    server = FakeOpenAI(latency_s, fault_rate, faults, seed, hang_s)
    sock = _bind()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-openai", daemon=True)
    thread.start()
    runner = asyncio.run_coroutine_threadsafe(_start(server, sock), loop).result(10)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _serve_process(
    latency_s: float, fault_rate: float, faults: Sequence[str], seed: int, hang_s: float
) -> Iterator[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--latency", str(latency_s),
           "--fault-rate", str(fault_rate), "--faults", ",".join(faults), "--seed", str(seed),
           "--hang", str(hang_s)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"fake_openai did not start (exit code {proc.poll()})")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def stats(base_url: str, reset: bool = False) -> dict[str, Any]:
    """The server's counters (``reset=True`` zeroes them after reading)."""
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/stats", timeout=10) as resp:
        data = json.load(resp)
    if reset:
        req = urllib.request.Request(f"{root}/stats/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()
    return data


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang", type=float, default=30.0)
    args = parser.parse_args(argv)
    server = FakeOpenAI(args.latency, args.fault_rate, args.faults.split(","), args.seed,
                        args.hang)
    sock = _bind(args.port)

    async def run() -> None:
        await _start(server, sock)
        print(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
