"""Asyncio HTTP server standing in for Woopra's HTTP Tracking API in tests and demos."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import json
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import parse_qsl

from pipeline.redact import redacted_url

if TYPE_CHECKING:
    from typing import Self

log = logging.getLogger("woopra_standin")

CONTROL_PREFIX = "/_control"
SUCCESS_BODY = '{"success":true}'
# Woopra puts every event property in the query string, so allow generous request heads.
MAX_HEAD_BYTES = 256 * 1024
MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass
class Rule:
    """Fault-injection rule: matching requests get scripted drops, statuses, delays."""

    match: dict[str, str] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=lambda: [200])
    retry_after: str | None = None
    delay_ms: float = 0.0
    drop_attempts: int = 0
    body: str | None = None

    def __post_init__(self) -> None:
        # Rules often come from JSON, where numbers sneak in for params and Retry-After.
        self.match = {str(key): str(value) for key, value in self.match.items()}
        self.statuses = [int(status) for status in self.statuses]
        if not self.statuses or not all(100 <= s <= 599 for s in self.statuses):
            raise ValueError(
                f"statuses must be a non-empty list of HTTP codes: {self.statuses}"
            )
        if self.retry_after is not None:
            self.retry_after = str(self.retry_after)
        self.delay_ms = float(self.delay_ms)
        self.drop_attempts = int(self.drop_attempts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        """Build a rule from a JSON object; unknown keys raise so typos fail loudly."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown rule keys: {sorted(unknown)}")
        return cls(**data)

    def matches(self, path: str, params: dict[str, str]) -> bool:
        """True when every match entry equals its param (``_path``: path substring)."""
        for key, want in self.match.items():
            if key == "_path":
                if want not in path:
                    return False
            elif params.get(key) != want:
                return False
        return True

    def outcome(self, attempt: int) -> int | None:
        """Status for a 1-based attempt, or None to drop the connection unanswered."""
        if attempt <= self.drop_attempts:
            return None
        # Drops consume the first attempts; the statuses script starts after them.
        index = min(attempt - self.drop_attempts - 1, len(self.statuses) - 1)
        return self.statuses[index]


def parse_rules_payload(data: Any) -> tuple[list[Rule], float | None]:
    """Parse ``{"rules": [...], "delay_ms": N}`` (or a bare list) into rules, delay."""
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict):
        raise TypeError("expected a JSON object with a 'rules' list")
    rules = [Rule.from_dict(item) for item in data.get("rules", [])]
    delay_ms = float(data["delay_ms"]) if data.get("delay_ms") is not None else None
    return rules, delay_ms


def _response(
    status: int, body: str, *, keep_alive: bool, retry_after: str | None = None
) -> bytes:
    """Serialise a complete response so it goes out in a single write."""
    # 1xx, 204 and 304 responses have no body (RFC 9110): strict clients reject one.
    payload = b"" if status < 200 or status in (204, 304) else body.encode("utf-8")
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    is_json = body[:1] in ("{", "[")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: "
        + ("application/json" if is_json else "text/plain; charset=utf-8"),
        f"Content-Length: {len(payload)}",
    ]
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def _error(message: str) -> str:
    return json.dumps({"success": False, "error": message})


class _BadRequest(Exception):
    """Unparseable request: answer with ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Split a request head into method, target, version and lower-cased headers."""
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _BadRequest(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _BadRequest(501, "chunked request bodies are not supported")
    return parts[0], parts[1], parts[2], headers


def tls_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """A server-side TLS context from a PEM certificate (chain) and its private key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class StandIn:
    """Woopra tracking-API stand-in running its asyncio loop in a daemon thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rules: list[Rule] | None = None,
        delay_ms: float = 0.0,
        record_path: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        show_pii: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.record_path = record_path
        # Set: serve HTTPS (e.g. with a self-signed certificate, to see clients refuse it).
        self.ssl_context = ssl_context
        # Logs redact emails, IPs and cookies unless asked (the recording keeps them: it is data).
        self.show_pii = show_pii
        self._rules = list(rules or [])
        self._delay_ms = float(delay_ms)
        # One lock guards all state shared between the loop thread and callers' threads.
        self._cond = threading.Condition()
        self._records: list[dict[str, Any]] = []
        self._attempts: dict[tuple[str, str], int] = {}
        self._connections = 0
        self._record_file: TextIO | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._startup_error: BaseException | None = None

    # ----- public, thread-safe API ------------------------------------------------

    @property
    def url(self) -> str:
        """Base tracking URL, e.g. ``http://127.0.0.1:PORT/track`` (``https://`` with TLS)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}/track"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Copy of every recorded tracking request, oldest first."""
        with self._cond:
            return [dict(record) for record in self._records]

    @property
    def connections(self) -> int:
        """Number of TCP connections accepted since start (not cleared by reset)."""
        with self._cond:
            return self._connections

    def stats(self) -> dict[str, int]:
        """Request and connection counters, as served by ``/_control/stats``."""
        with self._cond:
            return {"count": len(self._records), "connections": self._connections}

    def set_rules(self, rules: list[Rule], delay_ms: float | None = None) -> None:
        """Replace the fault-injection rules and, if given, the default delay."""
        with self._cond:
            self._rules = list(rules)
            if delay_ms is not None:
                self._delay_ms = float(delay_ms)

    def reset(self) -> None:
        """Forget recorded requests and attempt counters (rules stay)."""
        with self._cond:
            self._records.clear()
            self._attempts.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` requests are recorded; False if ``timeout`` runs out."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._records) >= count, timeout)

    def start(self) -> Self:
        """Serve from a background thread; returns self once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("stand-in already started")
        if self.record_path:
            self._record_file = open(self.record_path, "a", encoding="utf-8")  # noqa: SIM115
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="woopra-standin", daemon=True
        )
        self._thread.start()
        if not ready.wait(10.0):
            raise RuntimeError("woopra stand-in did not start within 10s")
        if self._startup_error is not None:
            self.stop()
            raise self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and wait for the thread to finish."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            # The loop may close between the check and the call; that is fine too.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        with self._cond:
            if self._record_file is not None:
                self._record_file.close()
                self._record_file = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----- event-loop side ------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        finally:
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_server(
                self._handle, self.host, self.port, limit=MAX_HEAD_BYTES, backlog=1024,
                ssl=self.ssl_context,
            )
        except OSError as exc:
            self._startup_error = exc
            ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopping.wait()
        server.close()
        # Cancel idle keep-alive and delayed handlers or wait_closed (3.12+) would hang.
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Small responses must not wait for the client's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._cond:
            self._connections += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except _BadRequest as exc:
            writer.write(_response(exc.status, _error(str(exc)), keep_alive=False))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request; there is nobody left to answer
        except asyncio.CancelledError:
            # stop() cancels handlers; ending normally avoids a Python 3.11 asyncio
            # bug that logs a traceback for cancelled stream-handler tasks.
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()  # flushes anything still buffered, then closes

    async def _serve_one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; return True to keep the connection open for the next."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # EOF between requests is how keep-alive connections end
        except asyncio.LimitOverrunError:
            raise _BadRequest(431, "request head too large") from None
        method, target, version, headers = _parse_head(head)
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise _BadRequest(400, "bad Content-Length")
        # Tracking calls are GETs, but a body must be consumed to keep requests framed.
        body = await reader.readexactly(int(length)) if length != "0" else b""
        connection = headers.get("connection", "").lower()
        keep_alive = version == "HTTP/1.1" and "close" not in connection

        path, _, query = target.partition("?")
        if path.startswith(CONTROL_PREFIX):
            status, text = self._control(method, path, body)
            writer.write(_response(status, text, keep_alive=keep_alive))
        else:
            outcome, rule, delay_ms = self._track(method, path, query, headers)
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000.0)
            if outcome is None or writer.is_closing():
                return False  # injected drop: close without sending a single byte
            ok = 200 <= outcome < 300
            text = SUCCESS_BODY if ok else _error(f"injected {outcome}")
            if rule is not None and rule.body is not None:
                text = rule.body
            retry_after = rule.retry_after if rule is not None and not ok else None
            writer.write(
                _response(outcome, text, keep_alive=keep_alive, retry_after=retry_after)
            )
        await writer.drain()
        return keep_alive

    def _track(
        self, method: str, path: str, query: str, headers: dict[str, str]
    ) -> tuple[int | None, Rule | None, float]:
        """Record a tracking request and decide its (status or drop, rule, delay)."""
        # dict() keeps the last value when a key repeats.
        params = dict(parse_qsl(query, keep_blank_values=True))
        with self._cond:
            key = (path, query)
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
            rule = next((r for r in self._rules if r.matches(path, params)), None)
            status = rule.outcome(attempt) if rule is not None else 200
            delay_ms = self._delay_ms + (rule.delay_ms if rule is not None else 0.0)
            record = {
                "method": method,
                "path": path,
                "params": params,
                "query": query,
                "headers": headers,
                "received_at": time.time(),
                "status": status,  # None means the connection was dropped
                "attempt": attempt,
            }
            self._records.append(record)
            if self._record_file is not None:
                self._record_file.write(json.dumps(record) + "\n")
                self._record_file.flush()  # so a parent process can tail the file live
            self._cond.notify_all()
        if log.isEnabledFor(logging.INFO):
            target = f"{path}?{query}" if self.show_pii else redacted_url(path, params.items())
            log.info("%s %s -> %s (#%d)", method, target, status or "drop", attempt)
        return status, rule, delay_ms

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        """Serve the ``/_control`` API used by out-of-process tests and demos."""
        route = path[len(CONTROL_PREFIX) :].rstrip("/")
        if (method, route) == ("GET", "/requests"):
            return 200, json.dumps(self.requests)
        if (method, route) == ("GET", "/stats"):
            return 200, json.dumps(self.stats())
        if (method, route) == ("POST", "/reset"):
            self.reset()
            return 200, SUCCESS_BODY
        if (method, route) == ("GET", "/rules"):
            with self._cond:
                current = [dataclasses.asdict(rule) for rule in self._rules]
                return 200, json.dumps({"rules": current, "delay_ms": self._delay_ms})
        if (method, route) == ("PUT", "/rules"):
            try:
                rules, delay_ms = parse_rules_payload(json.loads(body or b"{}"))
            except (ValueError, TypeError, AttributeError) as exc:
                return 400, _error(f"bad rules payload: {exc}")
            self.set_rules(rules, delay_ms)
            return 200, SUCCESS_BODY
        if route in ("/requests", "/stats", "/reset", "/rules"):
            return 405, _error(f"method {method} not allowed on {path}")
        return 404, _error(f"unknown control endpoint {path}")
