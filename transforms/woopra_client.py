"""Sending Woopra requests: retries, rate limit and concurrency around one HTTP session.

No Beam here: the delivery DoFn owns one ``WoopraSender`` per worker thread pool and calls
``send_all`` with a batch; tests and the debugger use it directly.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

from transforms.dead_letters import DeadLetter
from transforms.rate_limit import TokenBucket
from transforms.retry import RetryPolicy, Verdict, classify_status, parse_retry_after
from transforms.woopra_mapping import WoopraRequest


@dataclass(frozen=True)
class DeliveryOutcome:
    """How one request ended: its summary key, the last status and how many attempts it took."""

    request: WoopraRequest
    result: str  # delivered_200 | delivered_202 | rejected | retries_exhausted
    status: int | None
    attempts: int
    error: str = ""
    response_body: str | None = None
    elapsed_seconds: float = 0.0

    @property
    def delivered(self) -> bool:
        """True when Woopra accepted the request."""
        return self.result.startswith("delivered")

    def dead_letter(self) -> DeadLetter:
        """The dead-letter record of a request that was not delivered."""
        return DeadLetter(
            reason=self.result,
            error=self.error,
            event=self.request.event,
            status=self.status,
            response_body=self.response_body,
            attempts=self.attempts,
            request=self.request.as_record(),
            attributes=self.request.attributes,
        )


# Failures of the connection rather than of the request: worth another attempt.
TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,  # connection broken while reading the response
    requests.exceptions.ContentDecodingError,
)
FALLBACK_USER_AGENT = "woopra-delivery-pipeline/0.1 (server-side)"


def delivered_key(status: int) -> str:
    """Summary key of a 2xx: 202 is "queued", any other 2xx counts as processed."""
    return "delivered_202" if status == 202 else "delivered_200"


class WoopraSender:
    """Sends requests with keep-alive, a shared rate limit and the retry policy."""

    def __init__(
        self,
        policy: RetryPolicy,
        request_timeout: float = 10.0,
        max_in_flight: int = 32,
        limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.request_timeout = request_timeout
        self.max_in_flight = max_in_flight
        self.limiter = limiter
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="woopra-send")

    def _session(self) -> requests.Session:
        # One session per sending thread: keep-alive connections without sharing a pool lock.
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=1))
            session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=1))
            # Used only when the event has no user agent: say honestly who is calling.
            session.headers["User-Agent"] = FALLBACK_USER_AGENT
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def send(self, request: WoopraRequest) -> DeliveryOutcome:
        """Send one request, retrying as the policy says; never raises."""
        started = self._clock()
        attempts = 0
        status: int | None = None
        body: str | None = None
        error = ""
        while True:
            attempts += 1
            retry_after: float | None = None
            if self.limiter is not None:
                self.limiter.acquire()
            try:
                response = self._session().get(
                    request.url,
                    params=request.params,
                    headers=request.headers,
                    timeout=self.request_timeout,
                    allow_redirects=False,
                )
                status, body = response.status_code, response.text
                verdict = classify_status(status)
                if verdict is Verdict.DELIVERED:
                    return DeliveryOutcome(request, delivered_key(status), status, attempts,
                                           response_body=body, elapsed_seconds=self._clock() - started)
                error = f"HTTP {status}"
                if verdict is Verdict.REJECT:
                    return DeliveryOutcome(request, "rejected", status, attempts, error, body,
                                           self._clock() - started)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except TRANSIENT_ERRORS as exc:
                status, body = None, None
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - a bug or bad request must not fail the bundle
                return DeliveryOutcome(request, "rejected", None, attempts,
                                       f"{type(exc).__name__}: {exc}", None, self._clock() - started)
            delay = self.policy.next_delay(attempts, self._clock() - started, retry_after, self._rng)
            if delay is None:
                return DeliveryOutcome(request, "retries_exhausted", status, attempts, error, body,
                                       self._clock() - started)
            self._sleep(delay)

    def submit(self, request: WoopraRequest) -> Future[DeliveryOutcome]:
        """Start sending one request on the sender's threads."""
        return self._pool.submit(self.send, request)

    def send_all(self, batch: Iterable[WoopraRequest]) -> list[DeliveryOutcome]:
        """Send a batch with up to ``max_in_flight`` requests in flight; outcomes in input order."""
        return list(self._pool.map(self.send, batch))

    def close(self) -> None:
        """Stop the threads and close every keep-alive connection."""
        self._pool.shutdown(wait=True)
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
