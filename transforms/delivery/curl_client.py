"""The HTTP client of delivery: libcurl, through pycurl's ``AsyncCurlMulti``, on the sender's asyncio loop.

Woopra's tracking API is one kind of request: a GET whose query says everything, answered by a
small body. libcurl does the protocol (keep-alive, 1xx answers, header limits, chunked and
close-delimited bodies, TLS, proxies, DNS caching, IPv6 literals); this module sets the options
that make it fit delivery and turns its error codes into the exceptions the sender classifies
(docs/delivery.md, "The HTTP client"):

- ``http://`` and ``https://`` only; certificates verified with the host name checked, against the
  system's CAs (``SSL_CERT_FILE``/``SSL_CERT_DIR`` as Python's ``ssl`` reads them), always;
- keep-alive connections, at most ``max_connections`` kept; HTTP/1.1;
- one total timeout per request, resolving and connecting included;
- redirects are answers like any other (not followed); no cookies; no compression (it asks for
  ``identity``); a response body is kept up to ``MAX_BODY_BYTES``;
- the proxy of ``HTTPS_PROXY``/``HTTP_PROXY`` (either case) unless ``NO_PROXY`` names the host,
  read once per endpoint, as Python's ``urllib`` reads them.

Failures raise ``TimeoutError``, ``ssl.SSLCertVerificationError`` (the certificate or its host name
did not verify), ``BadResponseError`` (not valid HTTP, headers too large), ``ServerDisconnectedError``
(closed before the whole answer) or ``TransportError`` (refused, reset, DNS, proxy, TLS handshake):
all ``OSError`` but ``BadResponseError``. A request that must not be sent (not http(s), credentials in
the URL, spaces, control or non-ASCII characters in the URL, control characters in the User-Agent)
raises ``ValueError`` before anything is sent.
"""

from __future__ import annotations

import re
import ssl
import urllib.request
from typing import NamedTuple
from urllib.parse import urlsplit

import pycurl

MAX_BODY_BYTES = 64 * 1024  # of a response body kept (Woopra answers with a few bytes)
# Characters a request target must not hold: they would end the request line early.
_BAD_URL = re.compile(r"[\x00-\x20\x7f]")
# Control characters other than tab: a header value must not hold them (CR/LF would end the header).
_BAD_HEADER_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class TransportError(ConnectionError):
    """The request could not be sent or answered: refused, reset, DNS, proxy, TLS handshake."""


class ServerDisconnectedError(TransportError):
    """The server closed the connection before its whole answer arrived."""


class BadResponseError(Exception):
    """The answer is not valid HTTP/1.1 (or its headers are too large)."""


class Response(NamedTuple):
    """An answer: its status, body and Retry-After."""

    status: int
    body: str  # decoded as UTF-8, bad bytes replaced
    retry_after: str | None  # the Retry-After header in seconds, if any


# libcurl's error codes (curl/curl.h) that are not a plain connection failure.
_TIMEOUTS = {28}  # CURLE_OPERATION_TIMEDOUT
_CERTIFICATE = {60, 77, 83}  # PEER_FAILED_VERIFICATION, SSL_CACERT_BADFILE, SSL_ISSUER_ERROR
# UNSUPPORTED_PROTOCOL is also "Unsupported HTTP/1 subversion in response"; a URL's scheme is
# checked before libcurl sees it. Then WEIRD_SERVER_REPLY, BAD_CONTENT_ENCODING, TOO_LARGE (headers).
_BAD_ANSWER = {1, 8, 61, 100}
_DISCONNECTED = {18, 52, 56}  # PARTIAL_FILE, GOT_NOTHING, RECV_ERROR
_NOT_SENDABLE = {3, 43}  # URL_MALFORMAT, BAD_FUNCTION_ARGUMENT
_QUIET_ERRORS = {100: "the response headers are too large"}  # codes libcurl may give without a message


def _curl_failure(code: int, message: str, timeout: float) -> Exception:
    """The exception for one of libcurl's error codes (its message kept, the code appended)."""
    text = f"{message or _QUIET_ERRORS.get(code, 'no message')} (curl error {code})"
    if code in _TIMEOUTS:
        return TimeoutError(f"no answer within {timeout:g} s: {text}")
    if code in _CERTIFICATE:
        # OpenSSL's name for it, which the dead letter's readers know from every other client.
        return ssl.SSLCertVerificationError(f"certificate verify failed (CERTIFICATE_VERIFY_FAILED): {text}")
    if code in _BAD_ANSWER or message.startswith("Too large response headers"):  # the latter: code 56
        return BadResponseError(f"invalid HTTP response: {text}")
    if code in _DISCONNECTED:
        return ServerDisconnectedError(f"the server closed the connection before answering: {text}")
    if code in _NOT_SENDABLE:
        return ValueError(text)
    return TransportError(text)


def _check_base(base: str) -> None:
    """Refuse a base URL (everything before ``?``) that is not plain ``http(s)://host[:port]/path``."""
    parts = urlsplit(base)  # ValueError for a bad IPv6 literal such as "[::1"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {base[:100]!r}")
    if "@" in parts.netloc:
        raise ValueError(f"credentials in the URL are not supported: {base[:100]!r}")
    port = parts.netloc.rpartition("]")[2].partition(":")[2]
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"bad port in URL: {base[:100]!r}")


def proxy_for(base: str) -> str:
    """The proxy URL for requests to ``base`` from the environment, or "" for none."""
    parts = urlsplit(base)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme.lower(), "")
    # On Linux proxy_bypass is urllib's NO_PROXY check (proxy_bypass_environment).
    if proxy and urllib.request.proxy_bypass(parts.hostname or ""):
        return ""
    return proxy


class _Transfer:
    """One easy handle with its body buffer, reused request after request."""

    __slots__ = ("handle", "body", "size")

    def __init__(self, handle: pycurl.Curl) -> None:
        self.handle = handle
        self.body: list[bytes] = []
        self.size = 0

    def write(self, chunk: bytes) -> None:
        if self.size < MAX_BODY_BYTES:  # the rest is read and dropped: the connection stays usable
            kept = chunk[:MAX_BODY_BYTES - self.size]
            self.body.append(kept)
            self.size += len(kept)


class HttpClient:
    """Sends GETs through libcurl over kept-alive connections; use from one event loop's thread.

    ``ca_file`` replaces the system's CAs (tests trust their own CA with it).
    """

    def __init__(self, timeout: float, max_connections: int, ca_file: str | None = None) -> None:
        self.timeout = timeout
        self.max_connections = max_connections
        paths = ssl.get_default_verify_paths()
        self._ca_file = ca_file or paths.cafile
        self._ca_path = None if ca_file else paths.capath
        self._multi = pycurl.AsyncCurlMulti()
        self._multi.setopt(pycurl.M_MAXCONNECTS, max_connections)
        self._proxies: dict[str, str] = {}  # base URL -> its proxy ("" for none), checked once
        self._idle: list[_Transfer] = []

    async def get(self, url: str, user_agent: str) -> Response:
        """GET ``url`` (already percent-encoded, sent byte for byte) with this User-Agent."""
        base = url.partition("?")[0]
        proxy = self._proxies.get(base)
        if proxy is None:
            _check_base(base)
            proxy = self._proxies[base] = proxy_for(base)
        if not url.isascii() or _BAD_URL.search(url):
            raise ValueError("the URL holds spaces, control or non-ASCII characters")
        agent = user_agent.encode("utf-8")
        if _BAD_HEADER_VALUE.search(agent):
            raise ValueError("the User-Agent holds a line break or another control character")
        transfer = self._idle.pop() if self._idle else self._new_transfer()
        handle = transfer.handle
        transfer.body, transfer.size = [], 0
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.USERAGENT, agent)
        handle.setopt(pycurl.PROXY, proxy)  # "" also keeps libcurl from reading the environment itself
        try:
            await self._multi.perform(handle)
        except pycurl.error as exc:
            self._idle.append(transfer)
            code, message = exc.args
            raise _curl_failure(code, message, self.timeout) from None
        # Cancelled (the sender shutting down): the handle is not reused; the multi drops it.
        self._idle.append(transfer)
        retry_after = handle.getinfo(pycurl.RETRY_AFTER)
        return Response(handle.getinfo(pycurl.RESPONSE_CODE),
                        b"".join(transfer.body).decode("utf-8", errors="replace"),
                        str(retry_after) if retry_after > 0 else None)

    def _new_transfer(self) -> _Transfer:
        handle = pycurl.Curl()
        transfer = _Transfer(handle)
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        handle.setopt(pycurl.TIMEOUT_MS, max(1, round(self.timeout * 1000)))
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        handle.setopt(pycurl.SSL_VERIFYPEER, 1)
        handle.setopt(pycurl.SSL_VERIFYHOST, 2)
        if self._ca_file:  # else libcurl's own default
            handle.setopt(pycurl.CAINFO, self._ca_file)
        if self._ca_path:
            handle.setopt(pycurl.CAPATH, self._ca_path)
        handle.setopt(pycurl.HTTPHEADER, ["Accept: */*", "Accept-Encoding: identity"])
        handle.setopt(pycurl.WRITEFUNCTION, transfer.write)
        return transfer

    async def aclose(self) -> None:
        """Stop every transfer and close every connection."""
        await self._multi.aclose()
        for transfer in self._idle:
            transfer.handle.close()
        self._idle.clear()
