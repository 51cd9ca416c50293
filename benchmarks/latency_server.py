"""A lean OpenAI-compatible chat server for the throughput benchmark: fixed latency, no cap.

Issue 3's throughput target is about the *client*: N agents against a provider that
answers in ``latency`` seconds and serves any number of requests at once. A real provider
spends its CPU on other machines; this one shares the benchmark's two cores. The test
server (``tests/servers/fake_openai.py``, aiohttp.web) costs ~0.25 ms of CPU a request,
which at 256 replies due at the same instant delays the last of each wave by ~60 ms and
makes the server, not simlab, the bottleneck. This one answers the same requests with the
same replies (:func:`completion_for`) on a bare asyncio protocol (uvloop when installed,
orjson), at a fraction of that cost, so the figure measures the framework.

What it does per request is what a provider front end does: parse the HTTP request and its
JSON body, wait ``latency`` (a timer, not a blocked worker, so concurrency is unlimited),
build the completion, serialise it and write it back on the kept-alive connection.
``GET /stats`` and ``POST /stats/reset`` speak the test server's format (requests, peak
concurrency, process CPU seconds), so :func:`servers.fake_openai.stats` reads both, plus
``runq_wait_s``: how long the server was runnable but waiting for a CPU that other
processes held (Linux schedstat), which tells contention apart from the server's own cost.

    python benchmarks/latency_server.py --latency 0.2   # prints the base URL, then serves
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers.fake_openai import completion_for  # the same replies as the tests

_MAX_HEAD = 64 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required"}


def runqueue_wait_s() -> float | None:
    """Seconds this process's threads were runnable but not running (None off Linux).

    The second field of ``/proc/<pid>/task/<tid>/schedstat``: time spent waiting on a run
    queue while another process had the core, i.e. what other tenants cost a benchmark.
    """
    total = 0
    try:
        for task in Path("/proc/self/task").iterdir():
            total += int((task / "schedstat").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


class Counters:
    """Requests, in-flight now and at peak, and this process's CPU since the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = self.in_flight = self.peak = 0
        self.cpu0 = time.process_time()
        self.wait0 = runqueue_wait_s()

    def snapshot(self) -> dict[str, object]:
        wait = runqueue_wait_s()
        return {"requests": self.requests, "peak_concurrency": self.peak,
                "in_flight": self.in_flight, "cpu_s": round(time.process_time() - self.cpu0, 4),
                "runq_wait_s": None if wait is None or self.wait0 is None
                else round(wait - self.wait0, 4)}


class ChatProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: requests with a Content-Length body, kept alive."""

    def __init__(self, counters: Counters, latency_s: float) -> None:
        self.counters, self.latency_s = counters, latency_s
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > _MAX_HEAD:
                    self._reply(400, b'{"error": "header too large"}', close=True)
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            method, _, rest = head[0].partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", ""):
                self._reply(411, b'{"error": "send a Content-Length"}', close=True)
                return
            size = int(headers.get("content-length") or 0)
            if len(self.buf) < end + 4 + size:
                return  # the body is still arriving
            body = bytes(self.buf[end + 4:end + 4 + size])
            del self.buf[:end + 4 + size]
            close = headers.get("connection", "").lower() == "close"
            self._route(method, path, body, close)

    def _route(self, method: str, path: str, body: bytes, close: bool) -> None:
        c = self.counters
        if method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            c.requests += 1
            c.in_flight += 1
            c.peak = max(c.peak, c.in_flight)
            try:
                request = orjson.loads(body)
            except orjson.JSONDecodeError:
                c.in_flight -= 1
                self._reply(400, b'{"error": {"message": "body is not JSON"}}', close)
                return
            number = c.requests
            self.loop.call_later(self.latency_s, self._complete, request, number, close)
        elif method == "GET" and path == "/stats":
            self._reply(200, orjson.dumps(c.snapshot()), close)
        elif method == "POST" and path == "/stats/reset":
            c.reset()
            self._reply(200, b'{"reset": true}', close)
        else:
            self._reply(404, b'{"error": "no such route"}', close)

    def _complete(self, request: dict, number: int, close: bool) -> None:
        self.counters.in_flight -= 1
        text, prompt_tokens, completion_tokens, finish = completion_for(request)
        self._reply(200, orjson.dumps({
            "id": f"chatcmpl-bench-{number}", "object": "chat.completion", "created": 0,
            "model": request.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }), close)

    def _reply(self, status: int, payload: bytes, close: bool) -> None:
        if self.transport is None:
            return  # the client went away while we waited
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n")
        self.transport.write(head.encode() + payload)
        if close:
            self.transport.close()


def _loop_runner():  # uvloop's faster timers and transports when it is installed
    with suppress(ImportError):
        import uvloop

        return uvloop.run
    return asyncio.run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0)
    args = p.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(4096)
    counters = Counters()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: ChatProtocol(counters, args.latency), sock=sock)
        print(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
        await asyncio.Event().wait()

    _loop_runner()(run())


@contextmanager
def serve(latency_s: float) -> Iterator[str]:
    """Run the server in a child process (its own GIL) for the block; yield its /v1 URL."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--latency", str(latency_s)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"latency_server did not start (exit code {proc.poll()})")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
