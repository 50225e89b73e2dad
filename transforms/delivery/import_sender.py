"""Sending import bodies to Woopra's Import API: the call budget, retries, and halving rejected bodies.

No Beam here: the import step (transforms/send_imports.py) shares one ``ImportSender`` per worker
process; tests use it directly. HTTP is ``requests`` (a maintained client), one session per thread.

For each body: wait for the call budget, POST it (HTTP Basic, the App ID and Secret Key); 2xx
imports every visit in it; 408, 429 and 5xx, timeouts and dropped connections are retried with
backoff (a 429's ``Retry-After`` holds back every call of the process); a 4xx that depends on the
content (400, 413, 422, ...) splits the body in halves, each sent again, until the rejected visits
stand alone: only their events are rejected. A 4xx about the call itself (401, 403, 404, 405)
rejects the whole body at once, since every half would get it too.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlencode

import requests

from transforms.delivery.call_budget import WOOPRA_LIMITS, CallBudget, CallLimit
from transforms.delivery.retry import RetryPolicy, Verdict, classify_status, parse_retry_after
from transforms.delivery.sender import describe_error
from transforms.rules.import_visits import ImportBody, VisitLine
from transforms.rules.outcomes import Outcome

# Answers about the call, not its content: halving the body would only repeat them.
WHOLE_BODY_STATUSES = frozenset({401, 403, 404, 405, 407})
USER_AGENT = "woopra-delivery-pipeline/0.1 (import)"
RESPONSE_BODY_KEEP = 1024


@dataclass(frozen=True)
class ImportCredentials:
    """Woopra's Access Keys: the App ID and the Secret Key (never shown: ``repr`` hides the key)."""

    app_id: str
    secret_key: str

    def __repr__(self) -> str:
        return f"ImportCredentials(app_id={self.app_id!r}, secret_key='***')"

    __str__ = __repr__


@dataclass(frozen=True)
class ImportDelivery:
    """How to send import bodies: where, the budget, concurrency, timeouts and retries."""

    endpoint: str
    project: str
    limits: tuple[CallLimit, ...] = WOOPRA_LIMITS
    max_in_flight: int = 2
    request_timeout: float = 120.0
    retry: RetryPolicy = RetryPolicy()

    @property
    def url(self) -> str:
        """The endpoint with the project as its query parameter."""
        return f"{self.endpoint}?{urlencode({'project': self.project})}"


class VisitResult(NamedTuple):
    """How one visit line ended."""

    visit: VisitLine
    result: Outcome  # IMPORTED | REJECTED | RETRIES_EXHAUSTED
    status: int | None
    error: str = ""
    response_body: str | None = None
    attempts: int = 1


class NotImported(NamedTuple):
    """A call of a visit Woopra did not import: what its dead letter says besides the event."""

    key: bytes  # the call's ledger key: its visitor and event id
    reason: str  # rejected | retries_exhausted
    error: str
    status: int | None
    response_body: str | None
    attempts: int


class BodyOutcome(NamedTuple):
    """How one body ended: a result per visit line, in order, and the POSTs it took (splits, retries)."""

    results: list[VisitResult]
    calls: int
    retries: int = 0  # of those calls, the extra attempts of a body or a half (not the halves themselves)


class CallResult(NamedTuple):
    """How one body's POST ended, retries included."""

    verdict: Verdict
    status: int | None
    error: str
    response_body: str | None
    attempts: int


# Runs with each imported visit before its result is handed on (the ledger records there).
OnImported = Callable[[VisitLine], None]


class ImportSender:
    """Sends bodies from ``max_in_flight`` threads under one call budget; ``sleep`` is replaceable in tests."""

    def __init__(self, settings: ImportDelivery, credentials: ImportCredentials,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._auth = (credentials.app_id, credentials.secret_key)
        self.budget = CallBudget(settings.limits, clock)
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(settings.max_in_flight, thread_name_prefix="woopra-import")
        self._lock = threading.Lock()
        self.calls = 0  # POSTs made, every attempt
        self.rate_limited = 0  # 429 answers

    def submit(self, body: ImportBody, on_imported: OnImported | None = None) -> Future[BodyOutcome]:
        """Start sending ``body``; the future holds its ``BodyOutcome``."""
        return self._pool.submit(self.deliver, body, on_imported)

    def deliver(self, body: ImportBody, on_imported: OnImported | None = None) -> BodyOutcome:
        """Send ``body``, halving it while a 4xx rejects it; never raises."""
        try:
            sent = self.post(body.payload())
        except Exception as exc:  # noqa: BLE001 - a failure of ours must not fail the bundle
            sent = CallResult(Verdict.REJECT, None, describe_error(exc), None, 0)
        if sent.verdict is Verdict.DELIVERED:
            for visit in body.visits:
                if on_imported is not None:
                    on_imported(visit)
            return BodyOutcome([VisitResult(visit, Outcome.IMPORTED, sent.status, "", None, sent.attempts)
                                for visit in body.visits], sent.attempts, max(0, sent.attempts - 1))
        if sent.verdict is Verdict.REJECT and len(body.visits) > 1 and sent.status is not None and (
                sent.status not in WHOLE_BODY_STATUSES):
            first, second = (self.deliver(half, on_imported) for half in body.halves())
            return BodyOutcome(first.results + second.results, sent.attempts + first.calls + second.calls,
                               max(0, sent.attempts - 1) + first.retries + second.retries)
        result = Outcome.REJECTED if sent.verdict is Verdict.REJECT else Outcome.RETRIES_EXHAUSTED
        return BodyOutcome([VisitResult(visit, result, sent.status, sent.error, sent.response_body, sent.attempts)
                            for visit in body.visits], sent.attempts, max(0, sent.attempts - 1))

    def post(self, payload: bytes) -> CallResult:
        """POST one body under the budget, retrying as the policy says."""
        policy = self.settings.retry
        started = self._clock()
        waited = 0.0  # time spent waiting for the budget does not count against --max_retry_seconds
        attempts = 0
        while True:
            wait = self.budget.reserve()
            if wait > 0:
                self._sleep(wait)
                waited += wait
            attempts += 1
            status, text, retry_after = None, None, None
            try:
                status, text, retry_after = self._post_once(payload)
                verdict = classify_status(status)
                if verdict is not Verdict.RETRY:
                    return CallResult(verdict, status, "" if verdict is Verdict.DELIVERED else f"HTTP {status}",
                                      text, attempts)
                error = f"HTTP {status}"
            except (requests.ConnectionError, requests.Timeout, OSError) as exc:
                error = describe_error(exc)
            delay = policy.next_delay(attempts, self._clock() - started - waited, retry_after, self._rng)
            if delay is None:
                return CallResult(Verdict.RETRY, status, error, text, attempts)
            if retry_after is not None:
                self.budget.hold_until(self._clock() + retry_after)
            self._sleep(delay)

    def _post_once(self, payload: bytes) -> tuple[int, str, float | None]:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        with self._lock:
            self.calls += 1
        response = session.post(
            self.settings.url, data=payload, auth=self._auth, timeout=self.settings.request_timeout,
            headers={"Content-Type": "application/x-ndjson", "User-Agent": USER_AGENT}, allow_redirects=False)
        text = response.text[:RESPONSE_BODY_KEEP]
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response.status_code == 429 else None
        if response.status_code == 429:
            with self._lock:
                self.rate_limited += 1
        return response.status_code, text, retry_after

    def close(self) -> None:
        """Wait for the bodies being sent, then stop the threads."""
        self._pool.shutdown(wait=True)


def request_record(settings: ImportDelivery) -> dict[str, object]:
    """The ``request`` of an import dead letter: the call, never its credentials."""
    return {"method": "POST", "url": settings.url, "content_type": "application/x-ndjson"}

