"""Sending Woopra requests: retries, rate limit and concurrency over one keep-alive HTTP client.

No Beam here: the delivery DoFn shares one ``WoopraSender`` per worker process; tests and the
debugger use it directly.

The HTTP work is libcurl's (``transforms/delivery/curl_client.py``), driven by one asyncio loop
that keeps ``max_in_flight`` requests open on keep-alive connections, for a fraction of the CPU of
``requests`` with a thread per request, or of aiohttp (BENCHMARKS.md), so a worker's CPU goes to
the pipeline.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import NamedTuple

from transforms.delivery.curl_client import BadResponseError, HttpClient
from transforms.delivery.rate_limit import AdaptiveRate, Limiter, TokenBucket
from transforms.delivery.retry import RetryPolicy, Verdict, classify_status, parse_retry_after
from transforms.rules.dead_letters import DeadLetter
from transforms.rules.outcomes import Outcome, delivered_outcome
from transforms.rules.woopra_mapping import WoopraRequest, request_url

# Failures of the connection rather than of the request: worth another attempt.
TRANSIENT_ERRORS = (
    OSError,  # refused, reset, dropped before or while answering (ServerDisconnectedError), DNS, proxy, TLS
    BadResponseError,  # a garbled response (bad status line or headers)
    TimeoutError,
)
FALLBACK_USER_AGENT = "woopra-delivery-pipeline/0.1 (server-side)"


def is_certificate_failure(exc: BaseException) -> bool:
    """True when the server's TLS certificate could not be verified.

    Not transient: the same certificate fails again on every attempt, so such a request is
    rejected at once rather than retried (docs/delivery.md#tls). Verification itself
    is never turned off.
    """
    return isinstance(exc, ssl.SSLCertVerificationError) or isinstance(exc.__cause__, ssl.SSLCertVerificationError)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, for the dead letter."""
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


class SendResult(NamedTuple):
    """How sending one request ended: what the delivery process answers with."""

    result: Outcome  # DELIVERED_200 | DELIVERED_202 | REJECTED | RETRIES_EXHAUSTED
    status: int | None
    attempts: int
    error: str = ""
    response_body: str | None = None
    elapsed_seconds: float = 0.0


@dataclass(frozen=True)
class DeliveryOutcome:
    """A request and how sending it ended (``sent``; its fields are read here too, e.g. ``status``)."""

    request: WoopraRequest
    sent: SendResult

    @property
    def result(self) -> Outcome:
        return self.sent.result

    @property
    def status(self) -> int | None:
        return self.sent.status

    @property
    def attempts(self) -> int:
        return self.sent.attempts

    @property
    def error(self) -> str:
        return self.sent.error

    @property
    def response_body(self) -> str | None:
        return self.sent.response_body

    @property
    def elapsed_seconds(self) -> float:
        return self.sent.elapsed_seconds

    @property
    def delivered(self) -> bool:
        """True when Woopra accepted the request."""
        return self.sent.result.delivered

    def dead_letter(self) -> DeadLetter:
        """The dead-letter record of a request that was not delivered."""
        sent = self.sent
        return DeadLetter(
            reason=sent.result,
            error=sent.error,
            event=self.request.event,
            status=sent.status,
            response_body=sent.response_body,
            attempts=sent.attempts,
            request=self.request.as_record(),
            attributes=self.request.attributes,
        )


# Runs with a request's outcome before anyone waiting for it sees it (the ledger records there).
OnAnswer = Callable[[DeliveryOutcome], None]


class Pushback(NamedTuple):
    """Woopra's pushback as one sender saw it: totals since the sender started, and its rate now."""

    rate_limited: int = 0  # 429 answers
    throttled_seconds: float = 0.0  # time spent below the configured rate because of them
    send_rate: float | None = None  # the local token bucket's rate now; None without one (Envoy)
    failed_attempts: int = 0  # attempts that failed (refused, timed out, an error status), retried or not
    last_error: str = ""  # the latest failed attempt's error


class PushbackReporter:
    """What of a sender's pushback is not reported yet, so each 429 and each throttled second
    becomes a Beam metric once, whichever of the process's DoFn instances reports it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reported = Pushback()

    def unreported(self, totals: Pushback) -> Pushback:
        """The 429s and the whole throttled seconds since the last call, with the current rate."""
        with self._lock:
            seconds = int(totals.throttled_seconds - self._reported.throttled_seconds)  # fractions wait
            news = Pushback(totals.rate_limited - self._reported.rate_limited, seconds, totals.send_rate)
            self._reported = Pushback(totals.rate_limited, self._reported.throttled_seconds + seconds)
            return news


class WoopraSender:
    """Sends requests on its own asyncio loop thread, ``max_in_flight`` at a time.

    Every attempt (retries too) first takes a token from ``limiter``. ``sleep`` replaces the
    backoff waits in tests (a plain function given the seconds; nothing is awaited then).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        request_timeout: float = 10.0,
        max_in_flight: int = 32,
        limiter: Limiter | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.policy = policy
        self.request_timeout = request_timeout
        self.max_in_flight = max_in_flight
        self.limiter = limiter
        self._sleep = sleep
        self._rng = random.Random()
        # With a local bucket, Woopra's 429s lower its rate for a while (see AdaptiveRate).
        self.adaptive = AdaptiveRate(limiter) if isinstance(limiter, TokenBucket) else None
        self.rate_limited = 0  # 429 answers seen, read by the DoFn for its metrics
        self.failed_attempts = 0  # with last_error: the console's early warning (pipeline/progress.py)
        self.last_error = ""
        self.pushback_reporter = PushbackReporter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="woopra-sender", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result()
        # Closed when dropped or at exit too: a process-wide sender is never closed by hand.
        self._finalizer = weakref.finalize(self, _shut_down, self._loop, self._thread, self._client, self._tasks)

    async def _open(self) -> None:
        self._slots = asyncio.Semaphore(self.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        # Every attempt is one request: nothing is resent behind the retry policy's back.
        self._client = HttpClient(self.request_timeout, self.max_in_flight)

    async def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif seconds > 0:
            await asyncio.sleep(seconds)

    async def _attempt(self, full_url: str, user_agent: str) -> tuple[int, str, str | None]:
        async with self._slots:
            # The token is taken once a connection slot is free, right before sending: a request
            # holding a token while it waits for a slot would go out late, bunched with others.
            await self._wait_for_permission()
            return await self._client.get(full_url, user_agent)

    async def deliver(self, request: WoopraRequest) -> DeliveryOutcome:
        """Send one request, retrying as the policy says; never raises."""
        return DeliveryOutcome(request, await self.send_url(request.full_url(), request.user_agent))

    async def send_url(self, full_url: str, user_agent: str | None) -> SendResult:
        """Send one GET of an already encoded URL, retrying as the policy says; never raises."""
        started = time.monotonic()
        user_agent = user_agent or FALLBACK_USER_AGENT
        attempts = 0
        status: int | None = None
        body: str | None = None
        while True:
            attempts += 1
            retry_after: float | None = None
            try:
                status, body, retry_after_header = await self._attempt(full_url, user_agent)
                if status == 429:
                    self.rate_limited += 1
                if self.adaptive is not None:
                    self.adaptive.observe(status == 429, time.monotonic())
                verdict = classify_status(status)
                if verdict is Verdict.DELIVERED:
                    return SendResult(delivered_outcome(status), status, attempts, "", body, time.monotonic() - started)
                error = f"HTTP {status}"
                self._failed(error)
                if verdict is Verdict.REJECT:
                    return SendResult(Outcome.REJECTED, status, attempts, error, body, time.monotonic() - started)
                retry_after = parse_retry_after(retry_after_header)
            except TRANSIENT_ERRORS as exc:
                if is_certificate_failure(exc):
                    return SendResult(Outcome.REJECTED, None, attempts, describe_error(exc), None,
                                      time.monotonic() - started)
                status, body = None, None
                error = describe_error(exc)
                self._failed(error)
            except Exception as exc:  # noqa: BLE001 - a bad request must not fail the bundle
                return SendResult(Outcome.REJECTED, None, attempts, describe_error(exc), None,
                                  time.monotonic() - started)
            delay = self.policy.next_delay(attempts, time.monotonic() - started, retry_after, self._rng)
            if delay is None:
                return SendResult(Outcome.RETRIES_EXHAUSTED, status, attempts, error, body, time.monotonic() - started)
            await self._wait(delay)

    def _failed(self, error: str) -> None:
        self.failed_attempts += 1
        self.last_error = error

    async def _wait_for_permission(self) -> None:
        """The rate limit: a local token bucket, or a blocking global limiter such as Envoy's."""
        if self.limiter is None:
            return
        if isinstance(self.limiter, TokenBucket):
            wait = self.limiter.reserve()
            if wait > 0:  # no needless trip through the event loop when a token is ready
                await asyncio.sleep(wait)
        else:  # a blocking limiter (Envoy RLS over gRPC): wait on a thread, not on the loop
            await self._loop.run_in_executor(None, self.limiter.allow)

    def pushback(self) -> Pushback:
        """Woopra's pushback so far: 429 answers, seconds backed off, the bucket's rate now."""
        if self.adaptive is None:
            return Pushback(self.rate_limited, failed_attempts=self.failed_attempts, last_error=self.last_error)
        return Pushback(self.rate_limited, self.adaptive.throttled_seconds(time.monotonic()), self.adaptive.bucket.rate,
                        self.failed_attempts, self.last_error)

    def submit(self, request: WoopraRequest, on_answer: OnAnswer | None = None) -> Future[DeliveryOutcome]:
        """Start sending one request; the future completes with its outcome, after ``on_answer(outcome)``
        (on the loop's thread: it must not block)."""
        if on_answer is None:
            return asyncio.run_coroutine_threadsafe(self.deliver(request), self._loop)
        return asyncio.run_coroutine_threadsafe(self._deliver_then(request, on_answer), self._loop)

    async def _deliver_then(self, request: WoopraRequest, on_answer: OnAnswer) -> DeliveryOutcome:
        outcome = await self.deliver(request)
        on_answer(outcome)
        return outcome

    def submit_requests(
        self, batch: list[tuple[int, str, tuple[tuple[str, str], ...], str | None]],
        on_result: Callable[[int, SendResult], None],
    ) -> None:
        """Start sending ``(key, url, params, user_agent)`` items (a ``WoopraRequest``'s parts) with
        one wake-up of the loop; ``on_result(key, result)`` is called on the loop's thread as each
        one completes."""

        async def send_and_report(key: int, url: str, params: tuple[tuple[str, str], ...],
                                  user_agent: str | None) -> None:
            try:
                full_url = request_url(url, params)
            except Exception as exc:  # noqa: BLE001 - not sent (attempts 0), but answered all the same
                on_result(key, SendResult(Outcome.REJECTED, None, 0, describe_error(exc)))
                return
            on_result(key, await self.send_url(full_url, user_agent))

        def start() -> None:
            for key, url, params, user_agent in batch:
                task = self._loop.create_task(send_and_report(key, url, params, user_agent))
                self._tasks.add(task)  # the loop keeps only weak references to tasks
                task.add_done_callback(self._tasks.discard)

        self._loop.call_soon_threadsafe(start)

    def call_soon(self, callback: Callable[[], None], delay: float = 0.0) -> None:
        """Run ``callback`` on the loop's thread after ``delay`` seconds; call from that thread."""
        self._loop.call_later(delay, callback)

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop's thread; call from any thread."""
        self._loop.call_soon_threadsafe(callback)

    def send(self, request: WoopraRequest) -> DeliveryOutcome:
        """Send one request and wait for its outcome."""
        return self.submit(request).result()

    def close(self) -> None:
        """Close the keep-alive connections and stop the loop thread (once)."""
        self._finalizer()


def _shut_down(
    loop: asyncio.AbstractEventLoop, thread: threading.Thread, client: HttpClient,
    tasks: set[asyncio.Task[None]],
) -> None:
    if loop.is_closed() or not thread.is_alive():
        return

    async def close() -> None:
        # Requests still going (the delivery process abandoned by its parent) end here, rather
        # than being retried against closed connections or destroyed half done with the loop.
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()

    try:
        asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
