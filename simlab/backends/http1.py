"""Keep-alive HTTP/1.1 POSTs to one origin: the direct transport's wire, at low CPU cost.

A population tick sends hundreds of small JSON POSTs at once, and every response is
handled on the backend's one loop thread, so client CPU per request sets how far the last
reply of each wave lags the first. aiohttp's client costs 0.25–0.34 ms of CPU a request
here (request/response objects, cookie and header machinery, tracing hooks), which kept
the N=1000 benchmark at 1.3× its ideal wall time; this pool costs ~0.05 ms. It does only
what an OpenAI-compatible endpoint needs: POST a body with a Content-Length, read a
Content-Length, chunked or close-delimited reply (parsed by ``httptools``, uvicorn's
llhttp parser), keep connections alive, speak TLS for ``https``. No cookies, proxies or
streaming, and redirects are not followed: a 3xx raises :class:`HTTPRedirect`, naming
where it points, since an endpoint that moved is a config error to fix, not to retry.

Errors keep the meaning the backend's classifier relies on: a failed connect or a
connection lost before the reply is a :class:`ConnectionError`, a malformed reply is an
:class:`HTTPProtocolError` (a :class:`ConnectionError` too: retrying can help), and no
reply within ``timeout_s`` (connect, send and receive together) is a :class:`TimeoutError`.
The timeout is one timer on the reply's future (``asyncio.timeout`` costs ~4× as much CPU
per request); a request that times out or is cancelled closes its connection, since a
late reply would otherwise be read as the next request's.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from urllib.parse import urlsplit

import httptools


class HTTPProtocolError(ConnectionError):
    """The server's bytes are not a valid HTTP/1.1 response (or use an unknown encoding)."""


class HTTPRedirect(Exception):
    """A 3xx reply; ``status_code`` is its status (not worth a retry)."""

    def __init__(self, status_code: int, location: str) -> None:
        super().__init__(f"redirect to {location or '(no Location)'} not followed: "
                         "set api_base to the URL it points to")
        self.status_code = status_code


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; at most one request on it at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.parts: list[bytes] = []
        self.encoding = b""
        self.location = b""
        self.framed = False  # Content-Length or chunked: the end is not the connection's
        self.headers_done = False
        self.idle_since = 0.0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPProtocolError(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.headers_done and not self.framed:  # the body ran to the end of the stream
            self._finish(keep_alive=False)
        else:
            self._fail(ConnectionError("server closed the connection before replying"
                                       + (f" ({exc})" if exc else "")))

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self.parts, self.encoding, self.location = [], b"", b""
        self.framed = self.headers_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-encoding":
            self.encoding = value.strip().lower()
        elif name in (b"content-length", b"transfer-encoding"):
            self.framed = True
        elif name == b"location":
            self.location = value.strip()

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() >= 200:  # 1xx (e.g. 103 Early Hints) precede it
            self._finish(self.parser.should_keep_alive())

    # -- helpers
    def _finish(self, keep_alive: bool) -> None:
        waiter, self.waiter = self.waiter, None
        self.headers_done = False
        if waiter is None or waiter.done():
            self.close()  # a reply nobody asked for: the stream can no longer be trusted
            return
        body = b"".join(self.parts)
        self.parts = []
        try:
            body = _decode(body, self.encoding)
        except (zlib.error, HTTPProtocolError) as exc:
            waiter.set_exception(HTTPProtocolError(f"cannot decode the reply body: {exc}"))
            self.close()
            return
        status = self.parser.get_status_code()
        if 300 <= status < 400:
            waiter.set_exception(HTTPRedirect(status, self.location.decode("latin-1")))
            self.close()  # its body was read, but a redirect ends this origin's use anyway
            return
        waiter.set_result((status, body, keep_alive))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def _expire(waiter: asyncio.Future, timeout_s: float) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(f"no reply in {timeout_s:g} s"))


def _decode(body: bytes, encoding: bytes) -> bytes:
    if encoding in (b"", b"identity"):
        return body
    if encoding in (b"gzip", b"x-gzip", b"deflate"):  # we never ask for it; some send it
        try:
            return zlib.decompress(body, 47)  # gzip or zlib header, detected
        except zlib.error:
            return zlib.decompress(body, -15)  # raw deflate, as some servers send it
    raise HTTPProtocolError(f"unsupported Content-Encoding {encoding.decode('latin-1')!r}")


class HTTP1Pool:
    """Keep-alive connections to the origin of ``base_url``; POSTs under its path.

    A connection the server closes while idle is dropped when its close arrives; one idle
    longer than ``keepalive_s`` (aiohttp's default) is closed instead of reused. The pool
    opens a connection whenever none is idle: callers bound concurrency themselves (the
    backend's in-flight semaphore). Use it on one event loop.
    """

    def __init__(self, base_url: str, *, keepalive_s: float = 15.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"api_base: expected an http:// or https:// URL, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None)
        self.prefix = parts.path.rstrip("/")
        default = parts.port is None
        self.authority = (f"[{self.host}]" if ":" in self.host else self.host) + (
            "" if default else f":{self.port}")
        self.keepalive_s = keepalive_s
        self._idle: list[_Connection] = []

    def request_head(self, path: str, headers: dict[str, str]) -> bytes:
        """The request line and headers for POSTs to ``path``, up to the Content-Length."""
        lines = [f"POST {self.prefix}{path} HTTP/1.1", f"Host: {self.authority}",
                 "Content-Type: application/json", "Accept: application/json",
                 "User-Agent: simlab"]
        for name, value in headers.items():
            if any(c in f"{name}{value}" for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: line breaks are not allowed in a value")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")

    async def post(self, head: bytes, body: bytes, timeout_s: float) -> tuple[int, bytes]:
        """Send ``head`` (from :meth:`request_head`) with ``body``; return status and body."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn = self._take(loop.time())
        if conn is None:
            async with asyncio.timeout_at(deadline):
                conn = await self._open(loop)
        waiter = conn.waiter = loop.create_future()
        timer = loop.call_at(deadline, _expire, waiter, timeout_s)
        assert conn.transport is not None
        conn.transport.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
        try:
            status, data, keep_alive = await waiter
        except BaseException:  # failed, timed out or cancelled: never reuse the stream
            conn.close()
            raise
        finally:
            timer.cancel()
        if keep_alive and conn.transport is not None:
            conn.idle_since = loop.time()
            self._idle.append(conn)
        else:
            conn.close()
        return status, data

    def _take(self, now: float) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()  # most recently used first: the warmest connection
            if conn.transport is not None and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        return None

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        try:
            _, conn = await loop.create_connection(
                _Connection, self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.ssl else None)
        except OSError as exc:  # refused, unreachable, DNS, TLS: retrying may help
            raise ConnectionError(f"cannot connect to {self.authority}: {exc}") from exc
        return conn

    def close(self) -> None:
        """Close the idle connections (in-use ones close when their request ends)."""
        while self._idle:
            self._idle.pop().close()
