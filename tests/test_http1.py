"""HTTP1Pool (the direct transport's wire) against a scripted raw server on the same loop.

Each test scripts the server's exact bytes, so framing (Content-Length, chunked,
close-delimited), encodings, keep-alive, timeouts and broken replies are all checked
against what a real server can send, not against another client library's behaviour.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Awaitable, Callable

import pytest

from simlab.backends.http1 import HTTP1Pool, HTTPProtocolError, HTTPRedirect
from simlab.backends.litellm_backend import is_transient, new_loop

Reply = bytes | None  # raw bytes to write back; None: close without replying


class Scripted:
    """Reads each request (head + Content-Length body); answers with the next script item."""

    def __init__(self, replies: list[Reply], *, close_after: bool = False,
                 delay_s: float = 0.0) -> None:
        self.replies, self.close_after, self.delay_s = list(replies), close_after, delay_s
        self.connections = 0
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection, head, body)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                size = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(size)
                self.requests.append((conn, head, body))
                reply = self.replies.pop(0)
                await asyncio.sleep(self.delay_s)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after or b"Connection: close" in reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@pytest.fixture(params=["asyncio", "default"], autouse=True)
def loop_kind(request, monkeypatch):
    """Every test on asyncio's loop and on the backend's (uvloop where installed)."""
    if request.param == "asyncio":
        monkeypatch.setenv("SIMLAB_UVLOOP", "0")
    return request.param


def arun(coro: Awaitable[None]) -> None:
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(coro)


def run(server: Scripted, test: Callable[[HTTP1Pool, str], Awaitable[None]]) -> None:
    async def main() -> None:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        pool = HTTP1Pool(f"http://127.0.0.1:{port}/v1")
        try:
            await test(pool, f"127.0.0.1:{port}")
        finally:
            pool.close()
            srv.close()
            await srv.wait_closed()

    arun(main())


def test_request_bytes_and_keep_alive_reuse():
    server = Scripted([ok(b'{"a": 1}'), ok(b"second")])

    async def test(pool: HTTP1Pool, authority: str) -> None:
        head = pool.request_head("/chat/completions", {"Authorization": "Bearer k"})
        assert await pool.post(head, b'{"x": 1}', 5) == (200, b'{"a": 1}')
        assert await pool.post(head, b"{}", 5) == (200, b"second")
        assert server.connections == 1  # the second request reused the first connection
        _, first, body = server.requests[0]
        assert first == (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {authority}\r\n"
                         "Content-Type: application/json\r\nAccept: application/json\r\n"
                         "User-Agent: simlab\r\nAuthorization: Bearer k\r\n"
                         "Content-Length: 8\r\n\r\n").encode()
        assert body == b'{"x": 1}'

    run(server, test)


def test_chunked_gzip_and_close_delimited_bodies():
    packed = gzip.compress(b'{"zipped": true}')
    server = Scripted([
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
        ok(packed, b"Content-Encoding: gzip\r\n"),
        b"HTTP/1.1 503 Busy\r\nConnection: close\r\n\r\n{\"error\": \"busy\"}",
    ])

    async def test(pool: HTTP1Pool, _: str) -> None:
        head = pool.request_head("/x", {})
        assert await pool.post(head, b"1", 5) == (200, b"abcdefg")
        assert await pool.post(head, b"2", 5) == (200, b'{"zipped": true}')
        assert await pool.post(head, b"3", 5) == (503, b'{"error": "busy"}')  # body ends at EOF
        assert server.connections == 1

    run(server, test)


def test_server_closing_makes_the_next_request_reconnect():
    server = Scripted([ok(b"one", b"Connection: close\r\n"), ok(b"two")], close_after=True)

    async def test(pool: HTTP1Pool, _: str) -> None:
        head = pool.request_head("/x", {})
        assert await pool.post(head, b"", 5) == (200, b"one")
        assert await pool.post(head, b"", 5) == (200, b"two")
        assert server.connections == 2

    run(server, test)


def test_idle_connection_dropped_by_the_server_is_not_reused():
    server = Scripted([ok(b"one"), ok(b"two")], close_after=True)  # closes after replying

    async def test(pool: HTTP1Pool, _: str) -> None:
        head = pool.request_head("/x", {})
        assert await pool.post(head, b"", 5) == (200, b"one")  # server says keep-alive...
        await asyncio.sleep(0.05)  # ...but hangs up while the connection is idle
        assert await pool.post(head, b"", 5) == (200, b"two")
        assert server.connections == 2

    run(server, test)


def test_failures_raise_what_the_classifier_expects():
    server = Scripted([None, b"HTTP/1.1 2x0 ???\r\n\r\n",
                       ok(b"\x00\x01", b"Content-Encoding: br\r\n"),
                       b"HTTP/1.1 308 Moved\r\nLocation: https://new/v1\r\n"
                       b"Content-Length: 0\r\n\r\n",
                       b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok(b"fine")])

    async def test(pool: HTTP1Pool, _: str) -> None:
        head = pool.request_head("/x", {})
        with pytest.raises(ConnectionError, match="closed the connection before replying") as e:
            await pool.post(head, b"", 5)
        assert is_transient(e.value)
        with pytest.raises(HTTPProtocolError, match="malformed HTTP response") as e:
            await pool.post(head, b"", 5)
        assert is_transient(e.value)
        with pytest.raises(HTTPProtocolError, match="unsupported Content-Encoding 'br'"):
            await pool.post(head, b"", 5)
        with pytest.raises(HTTPRedirect, match="redirect to https://new/v1 not followed") as e:
            await pool.post(head, b"", 5)
        assert e.value.status_code == 308 and not is_transient(e.value)  # fix the config
        assert await pool.post(head, b"", 5) == (200, b"fine")  # 1xx skipped; fresh connection
        assert server.connections == 5  # each failure discarded its connection

    run(server, test)


def test_timeout_discards_the_connection():
    server = Scripted([ok(b"late"), ok(b"on time")], delay_s=0.3)

    async def test(pool: HTTP1Pool, _: str) -> None:
        head = pool.request_head("/x", {})
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError, match=r"no reply in 0\.1 s"):
            await pool.post(head, b"", 0.1)
        assert 0.09 < loop.time() - start < 0.25
        # the late reply to the first request must never be read as this one's
        assert await pool.post(head, b"", 2) == (200, b"on time")
        assert server.connections == 2

    run(server, test)


def test_connect_refused_and_bad_input():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens once the block ends

    async def refused() -> None:
        pool = HTTP1Pool(f"http://127.0.0.1:{port}")
        with pytest.raises(ConnectionError, match=f"cannot connect to 127.0.0.1:{port}"):
            await pool.post(pool.request_head("/x", {}), b"", 2)

    arun(refused())
    with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
        HTTP1Pool("ftp://example.com")
    with pytest.raises(ValueError, match="line breaks"):
        HTTP1Pool("http://h").request_head("/x", {"Authorization": "Bearer a\r\nX-Evil: 1"})
    assert HTTP1Pool("https://api.example.com/v1").request_head("/c", {}).startswith(
        b"POST /v1/c HTTP/1.1\r\nHost: api.example.com\r\n")
