"""Deliver: send each ``WoopraRequest`` to Woopra; failures become dead letters (SPEC §5).

Requests go to one sender per worker process (in a child process by default, see
transforms/delivery_process.py) while the bundle goes on, so a worker keeps ``max_in_flight``
requests in flight. Each output keeps its own element's timestamp and window.
The DoFn never raises after sending: a failed bundle would be retried by the runner and send
its events twice, so every outcome, good or bad, becomes an output.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.components.adaptive_throttler import ThrottlingSignaler
from apache_beam.io.components.rate_limiter import RateLimiter
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared
from apache_beam.utils.windowed_value import WindowedValue

from transforms.counters import NAMESPACE, counter
from transforms.delivery_process import DeliveryProcess
from transforms.rate_limit import ENVOY_DOMAIN, TokenBucket, envoy_rate_limiter
from transforms.retry import RetryPolicy
from transforms.woopra_client import DeliveryOutcome, WoopraSender
from transforms.woopra_mapping import WoopraRequest

DEAD_LETTERS = "dead_letters"
# Requests handed to the sender per concurrent slot: enough queued that every slot has its next
# request ready while answers travel back (through a pipe, with the delivery process).
QUEUED_PER_SLOT = 8
# One sender per worker process, shared by every DoFn instance and thread in it: one token
# bucket holds the rate for the whole process, and keep-alive connections outlive bundles
# (the streaming DirectRunner sets up and tears down its DoFns for every bundle).
_PROCESS_SENDERS = Shared()


@dataclass(frozen=True)
class DeliverySettings:
    """How to send: per-process rate, concurrency, timeouts and the retry policy."""

    rate_limit: float = 100.0  # requests per second for this worker process
    max_in_flight: int = 32
    request_timeout: float = 10.0
    retry: RetryPolicy = RetryPolicy()
    # Set: one limit for the whole job from this Envoy Rate Limit Service (host:port).
    rate_limiter_address: str | None = None
    rate_limiter_domain: str = ENVOY_DOMAIN
    project: str = ""  # the Envoy descriptor's value
    # Send from a child process, on a core of its own (see transforms/delivery_process.py).
    separate_process: bool = True

    def limiter(self) -> RateLimiter:
        """This process's limiter: Envoy's global one when configured, else a token bucket."""
        if self.rate_limiter_address:
            return envoy_rate_limiter(self.rate_limiter_address, self.project, self.rate_limiter_domain)
        return TokenBucket(self.rate_limit)


def _new_sender(settings: DeliverySettings) -> WoopraSender | DeliveryProcess:
    if settings.separate_process:
        return DeliveryProcess(settings)
    return WoopraSender(settings.retry, settings.request_timeout, settings.max_in_flight, settings.limiter())


class _DeliverFn(beam.DoFn):
    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings
        self.counters = {key: counter(key) for key in (
            "delivered_200", "delivered_202", "rejected", "retries_exhausted", "retried_requests")}

    def setup(self) -> None:
        settings = self.settings
        self.sender = _PROCESS_SENDERS.acquire(lambda: _new_sender(settings), tag=repr(settings))
        # Visible in Dataflow's console: Woopra's pushback and the rate we send at because of it.
        self.rate_limited_counter = Metrics.counter(NAMESPACE, "rate_limited_responses")
        self.send_rate_gauge = Metrics.gauge(NAMESPACE, "send_rate_per_second")
        self.throttling = ThrottlingSignaler(NAMESPACE)
        self._reported_at = time.monotonic()

    def start_bundle(self) -> None:
        self.in_flight: collections.deque[tuple[Future[DeliveryOutcome], Any, Any]] = collections.deque()

    def process(
        self, request: WoopraRequest, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam
    ) -> Iterator[Any]:
        self.in_flight.append((self.sender.submit(request), timestamp, window))
        # Keep the threads busy but bound memory: wait for the oldest once the queue is full.
        while self.in_flight and (
            len(self.in_flight) >= QUEUED_PER_SLOT * self.settings.max_in_flight or self.in_flight[0][0].done()
        ):
            yield self._emit(*self.in_flight.popleft())

    def finish_bundle(self) -> Iterator[Any]:
        while self.in_flight:
            yield self._emit(*self.in_flight.popleft())
        self._report_pushback(force=True)

    def _report_pushback(self, force: bool = False) -> None:
        """Beam metrics must be updated on the bundle's thread: copy the sender's figures (the
        same whether the sender is in this process or in the delivery process)."""
        now = time.monotonic()
        if not force and now - self._reported_at < 1.0:
            return
        self._reported_at = now
        news = self.sender.pushback_ledger.unreported(self.sender.pushback())
        if news.rate_limited:
            self.rate_limited_counter.inc(news.rate_limited)
        if news.throttled_seconds:
            self.throttling.signal_throttled(int(news.throttled_seconds))
        if news.send_rate is not None:
            self.send_rate_gauge.set(int(news.send_rate))

    def _emit(self, future: Future[DeliveryOutcome], timestamp: Any, window: Any) -> Any:
        outcome = future.result()  # send() never raises
        self._report_pushback()
        self.counters[outcome.result].inc()
        if outcome.attempts > 1:
            self.counters["retried_requests"].inc(outcome.attempts - 1)
        if outcome.delivered:
            return WindowedValue(outcome, timestamp, (window,))
        return pvalue.TaggedOutput(DEAD_LETTERS, WindowedValue(outcome.dead_letter(), timestamp, (window,)))


class DeliverToWoopra(beam.PTransform):
    """Send requests to Woopra; outputs ``delivered`` outcomes and ``dead_letters``."""

    def __init__(self, settings: DeliverySettings) -> None:
        super().__init__()
        self.settings = settings

    def expand(self, requests: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return requests | "Send" >> beam.ParDo(_DeliverFn(self.settings)).with_outputs(
            DEAD_LETTERS, main="delivered")
