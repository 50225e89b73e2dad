"""The HTTP client of delivery: GETs of already encoded URLs over keep-alive connections, on asyncio.

Woopra's tracking API is one kind of request: a GET whose query says everything, answered by a
small body. This client does that and nothing else, so it costs a fraction of a general client's
CPU per request (aiohttp spent about four times as much: BENCHMARKS.md, benchmark 1), which is
what limits a worker's delivery rate. Responses are parsed by httptools, the Python binding of
llhttp (Node.js's HTTP parser, in C); this module only writes requests and keeps connections.

What it does:
- ``http://`` and ``https://`` (certificates verified against the system's CAs, always);
- keep-alive connections per host, at most ``max_connections`` kept idle; a connection the server
  closed, or whose answer said ``Connection: close``, is not reused;
- one total timeout per request, connecting included (like aiohttp's ``ClientTimeout(total=)``);
- redirects are answers like any other (not followed); no cookies, no proxies, no compression
  (it asks for ``identity``); a response body is kept up to ``MAX_BODY_BYTES``.

Failures of the connection or the answer raise ``OSError`` (refused, reset, DNS, TLS: the
``ssl`` module's errors are ``OSError`` too), ``ServerDisconnectedError``, ``BadResponseError``
or ``TimeoutError``; a request that cannot be written (a URL or User-Agent with characters HTTP
does not allow) raises ``ValueError`` before anything is sent.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from typing import NamedTuple

import httptools

MAX_BODY_BYTES = 64 * 1024  # of a response body kept (Woopra answers with a few bytes)
# Characters a request target or a header value must not hold: they would end the line early.
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f]")
_BAD_HEADER_VALUE = re.compile(rb"[\x00\r\n]")


class ServerDisconnectedError(ConnectionError):
    """The server closed the connection before its whole answer arrived."""


class BadResponseError(Exception):
    """The answer is not valid HTTP/1.1."""


class Response(NamedTuple):
    status: int
    body: str  # decoded as UTF-8, bad bytes replaced
    retry_after: str | None  # the Retry-After header, if any


class _Origin(NamedTuple):
    """Where a base URL (everything before ``?``) points: the pool key and the request's fixed parts."""

    key: tuple[str, int, bool]  # host, port, TLS
    host_header: bytes
    path: bytes


def _origin(base: str) -> _Origin:
    scheme, sep, rest = base.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {base[:100]!r}")
    authority, slash, path = rest.partition("/")
    if not authority or "@" in authority:
        raise ValueError(f"no host (or credentials, not supported) in URL: {base[:100]!r}")
    tls = scheme == "https"
    host, port = authority, 443 if tls else 80
    if authority.startswith("["):  # an IPv6 literal: [::1]:8080
        end = authority.find("]")
        host, after = authority[1:end], authority[end + 1:]
        if after.startswith(":"):
            port = int(after[1:])
    elif ":" in authority:
        host, _, port_text = authority.rpartition(":")
        port = int(port_text)
    if not host or not 0 < port < 65536:
        raise ValueError(f"bad host or port in URL: {base[:100]!r}")
    return _Origin((host, port, tls), authority.encode("ascii"), (slash + path).encode("ascii"))


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._reset()

    def _reset(self) -> None:
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._retry_after: str | None = None
        self._length_known = False  # Content-Length or chunked: else the body ends when the connection does
        self._headers_done = False
        self.reusable = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadResponseError(f"invalid HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and not self._length_known and exc is None:
            self._complete()  # a body delimited by the end of the connection (HTTP/1.0 style)
        else:
            self._fail(ServerDisconnectedError("the server closed the connection before answering"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"retry-after":
            self._retry_after = value.decode("latin-1").strip()
        elif name in (b"content-length", b"transfer-encoding"):
            self._length_known = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._body_bytes < MAX_BODY_BYTES:
            self._body.append(body[:MAX_BODY_BYTES - self._body_bytes])
            self._body_bytes += len(self._body[-1])

    def on_message_complete(self) -> None:
        self.reusable = self._parser.should_keep_alive()
        self._complete()

    # the request
    def request(self, head: bytes) -> asyncio.Future[Response]:
        """Write one request; the future gets its answer (or the failure)."""
        assert self.transport is not None
        self._reset()
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(head)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            body = b"".join(self._body).decode("utf-8", errors="replace")
            waiter.set_result(Response(self._parser.get_status_code(), body, self._retry_after))

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class HttpClient:
    """Sends GETs over kept-alive connections; use from one event loop's thread."""

    def __init__(self, timeout: float, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.max_connections = max_connections
        self._ssl = ssl_context
        self._origins: dict[str, _Origin] = {}
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def get(self, url: str, user_agent: str) -> Response:
        """GET ``url`` (already percent-encoded, sent byte for byte) with this User-Agent."""
        base, question, query = url.partition("?")
        origin = self._origins.get(base)
        if origin is None:
            origin = self._origins[base] = _origin(base)
        target = origin.path + question.encode("ascii") + query.encode("ascii")
        agent = user_agent.encode("utf-8")
        if _BAD_TARGET.search(target):
            raise ValueError("the URL holds spaces or control characters")
        if _BAD_HEADER_VALUE.search(agent):
            raise ValueError("the User-Agent holds a line break or NUL")
        head = b"".join((b"GET ", target, b" HTTP/1.1\r\nHost: ", origin.host_header, b"\r\nUser-Agent: ", agent,
                         b"\r\nAccept: */*\r\nAccept-Encoding: identity\r\n\r\n"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        connection = self._idle_connection(origin.key) or await self._connect(origin.key, deadline)
        answer = connection.request(head)
        timer = loop.call_at(deadline, _time_out, answer, self.timeout)
        try:
            response = await answer
        except BaseException:
            self._discard(connection)
            raise
        finally:
            timer.cancel()
        if connection.reusable and not connection.closed:
            self._release(origin.key, connection)
        else:
            self._discard(connection)
        return response

    def _idle_connection(self, key: tuple[str, int, bool]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.transport is not None and not connection.transport.is_closing():
                return connection
            self._discard(connection)
        return None

    async def _connect(self, key: tuple[str, int, bool], deadline: float) -> _Connection:
        host, port, tls = key
        loop = asyncio.get_running_loop()
        context = (self._ssl or _default_ssl_context()) if tls else None
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(_Connection, host, port, ssl=context, server_hostname=host if tls else None),
                max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise TimeoutError(f"could not connect within {self.timeout:g} s") from None
        self._open.add(connection)
        return connection

    def _release(self, key: tuple[str, int, bool], connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self.max_connections:
            idle.append(connection)
        else:
            self._discard(connection)

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    def close(self) -> None:
        """Close every connection."""
        for connection in list(self._open):
            self._discard(connection)
        self._idle.clear()


def _time_out(answer: asyncio.Future[Response], seconds: float) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError(f"no answer within {seconds:g} s"))


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """The system's CAs, certificates and host names verified (made once: loading CAs is slow)."""
    return ssl.create_default_context()
