"""Woopra stand-in on aiohttp.web: the tracking API and the Import API; records requests and injects faults.

The Import API (``POST .../import``, docs/backfill.md#the-import-sink) checks HTTP Basic authentication
against the stand-in's App ID and Secret Key, validates the NDJSON body (each line a visit with a
visitor identifier and well-formed actions; 400 naming the first bad line) and records the visits
of every accepted body. Rules inject faults as for tracking calls; ``_body`` matches a substring of
an import body, so one visit can be made to poison every body holding it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from aiohttp import web

from pipeline.tools.redact import redacted_url
from woopra_standin.import_api import basic_auth, parse_import_body

if TYPE_CHECKING:
    from typing import Self

log = logging.getLogger("woopra_standin")

CONTROL_PREFIX = "/_control"
SUCCESS_BODY = '{"success":true}'
# Woopra puts every event property in the query string, so allow generous request heads.
MAX_HEAD_BYTES = 256 * 1024
MAX_BODY_BYTES = 10 * 1024 * 1024
# How long stop() lets a delayed answer finish before cancelling it.
SHUTDOWN_SECONDS = 0.1
# The Access Keys the Import API accepts unless the stand-in is given others.
IMPORT_APP_ID = "standin-app"
IMPORT_SECRET_KEY = "standin-secret"


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

    def matches(self, path: str, params: dict[str, str], body: str = "") -> bool:
        """True when every match entry equals its param (``_path``: path substring; ``_body``: body substring)."""
        for key, want in self.match.items():
            if key == "_path":
                if want not in path:
                    return False
            elif key == "_body":
                if want not in body:
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


def _reply(status: int, body: str, retry_after: str | None = None) -> web.Response:
    """A response typed by its body (JSON or plain text), with Retry-After if given."""
    headers = {"Content-Type": "application/json" if body[:1] in ("{", "[") else "text/plain; charset=utf-8"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    # 1xx, 204 and 304 responses have no body (RFC 9110): strict clients reject one.
    payload = None if status < 200 or status in (204, 304) else body.encode("utf-8")
    return web.Response(status=status, body=payload, headers=headers)


def tls_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """A server-side TLS context from a PEM certificate (chain) and its private key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


async def _settled(tasks: set[asyncio.Task[Any]]) -> None:
    """Wait for ``tasks`` to end (cancelled), whatever they raise."""
    await asyncio.gather(*tasks, return_exceptions=True)


class StandIn:
    """Woopra tracking-API stand-in serving an aiohttp.web application from a daemon thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rules: list[Rule] | None = None,
        delay_ms: float = 0.0,
        record_path: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        show_pii: bool = False,
        import_keys: tuple[str, str] = (IMPORT_APP_ID, IMPORT_SECRET_KEY),
    ) -> None:
        self.host = host
        self.import_keys = import_keys
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
        self._imported: list[dict[str, Any]] = []  # the visits of every accepted import body
        self._attempts: dict[tuple[str, str], int] = {}
        self._connections = 0
        self._record_file: TextIO | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
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
    def import_url(self) -> str:
        """The Import API's URL, e.g. ``http://127.0.0.1:PORT/rest/3.0/import``."""
        return self.url.removesuffix("/track") + "/rest/3.0/import"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Copy of every recorded tracking request, oldest first."""
        with self._cond:
            return [dict(record) for record in self._records]

    @property
    def imported_visits(self) -> list[dict[str, Any]]:
        """Every visit of every import body answered 2xx, in the order received."""
        with self._cond:
            return list(self._imported)

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
            self._imported.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` requests are recorded; False if ``timeout`` runs out."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._records) >= count, timeout)

    def start(self) -> Self:
        """Serve from a background thread; returns self once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("stand-in already started")
        if self.record_path:
            os.makedirs(os.path.dirname(self.record_path) or ".", exist_ok=True)  # out/received.jsonl on a fresh clone
            self._record_file = open(self.record_path, "a", encoding="utf-8")  # noqa: SIM115
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="woopra-standin", daemon=True)
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

    def _app(self) -> web.Application:
        """Tracking calls on every path, except the control API under ``/_control``."""
        control = web.Application()
        control.add_routes([
            web.get("/requests", self._get_requests),
            web.get("/stats", self._get_stats),
            web.post("/reset", self._reset),
            web.get("/rules", self._get_rules),
            web.put("/rules", self._put_rules),
        ])
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.add_subapp(CONTROL_PREFIX, control)
        app.router.add_route("POST", "/{head:.*}import", self._import)
        app.router.add_route("*", "/{tail:.*}", self._track)
        return app

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        finally:
            # Answers still on their way (a handler whose connection the job dropped, a delayed
            # answer) end here, cancelled, rather than as "Task was destroyed but it is pending!".
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(_settled(pending))
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            self._app(), access_log=None, shutdown_timeout=SHUTDOWN_SECONDS,
            max_line_size=MAX_HEAD_BYTES, max_field_size=MAX_HEAD_BYTES,
        )
        await runner.setup()
        handler_factory = runner.server
        assert handler_factory is not None  # setup() made it

        def counted() -> asyncio.Protocol:
            with self._cond:
                self._connections += 1
            return handler_factory()

        try:
            # Our own listener rather than a TCPSite, so that every accepted connection is counted.
            server = await asyncio.get_running_loop().create_server(
                counted, self.host, self.port, ssl=self.ssl_context, backlog=1024
            )
        except OSError as exc:
            self._startup_error = exc
            ready.set()
            await runner.cleanup()
            return
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopping.wait()
        server.close()
        await runner.cleanup()  # closes keep-alive connections, cancels answers still delayed
        await server.wait_closed()

    async def _track(self, request: web.Request) -> web.Response:
        """Record a tracking call and answer as its rule scripts (or 200 at once)."""
        url = request.rel_url
        path, query = url.raw_path, url.raw_query_string
        # Decoded as urllib's parse_qsl would (blanks kept), in C; dict() keeps a repeated key's last value.
        params = dict(url.query.items())
        with self._cond:
            attempt = self._attempts.get((path, query), 0) + 1
            self._attempts[(path, query)] = attempt
            rule = next((r for r in self._rules if r.matches(path, params)), None)
            status = rule.outcome(attempt) if rule is not None else 200
            record = {
                "method": request.method,
                "path": path,
                "params": params,
                "query": query,
                "headers": {name.lower(): value for name, value in request.headers.items()},
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
            log.info("%s %s -> %s (#%d)", request.method, target, status or "drop", attempt)

        return await self._answer(request, rule, status, None)

    async def _import(self, request: web.Request) -> web.Response:
        """An Import API call: authentication, then the rules, then the body's validation."""
        path, params = request.rel_url.raw_path, dict(request.rel_url.query.items())
        payload = await request.read()
        text = payload.decode("utf-8", "replace")
        authorized = basic_auth(request.headers.get("Authorization")) == self.import_keys
        visits, problem = parse_import_body(text)
        with self._cond:
            key = (path, hashlib.blake2b(payload, digest_size=16).hexdigest())
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
            rule = next((r for r in self._rules if r.matches(path, params, text)), None)
            status = 401 if not authorized else rule.outcome(attempt) if rule is not None else 200
            if status is not None and 200 <= status < 300 and problem:
                status = 400
            # No headers kept: the Authorization header holds the Secret Key.
            record = {"method": request.method, "path": path, "params": params, "visits": len(visits),
                      "bytes": len(payload), "authorized": authorized, "received_at": time.time(),
                      "status": status, "attempt": attempt}
            self._records.append(record)
            if status is not None and 200 <= status < 300:
                self._imported.extend(visits)
            if self._record_file is not None:
                self._record_file.write(json.dumps(record) + "\n")
                self._record_file.flush()
            self._cond.notify_all()
        log.info("POST %s (%d visits, %d bytes) -> %s (#%d)", path, len(visits), len(payload), status or "drop",
                 attempt)
        return await self._answer(request, rule, status, problem if status == 400 else None)

    async def _answer(self, request: web.Request, rule: Rule | None, status: int | None,
                      problem: str | None) -> web.Response:
        delay_ms = self._delay_ms + (rule.delay_ms if rule is not None else 0.0)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)
        if status is None:
            # Injected drop: close without a byte; aiohttp then finds the transport closed and
            # skips this response, so the client sees the connection end unanswered.
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        ok = 200 <= status < 300
        error = problem or ("unauthorized" if status == 401 else f"injected {status}")
        body = SUCCESS_BODY if ok else json.dumps({"success": False, "error": error})
        if rule is not None and rule.body is not None and not problem:
            body = rule.body
        return _reply(status, body, rule.retry_after if rule is not None and not ok else None)

    async def _get_requests(self, _: web.Request) -> web.Response:
        return web.json_response(self.requests)

    async def _get_stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _reset(self, _: web.Request) -> web.Response:
        self.reset()
        return _reply(200, SUCCESS_BODY)

    async def _get_rules(self, _: web.Request) -> web.Response:
        with self._cond:
            return web.json_response(
                {"rules": [dataclasses.asdict(rule) for rule in self._rules], "delay_ms": self._delay_ms}
            )

    async def _put_rules(self, request: web.Request) -> web.Response:
        try:
            rules, delay_ms = parse_rules_payload(json.loads(await request.read() or b"{}"))
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"success": False, "error": f"bad rules payload: {exc}"}, status=400)
        self.set_rules(rules, delay_ms)
        return _reply(200, SUCCESS_BODY)
