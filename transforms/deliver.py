"""Deliver: send each ``WoopraRequest`` to Woopra; failures become dead letters (SPEC §5).

Requests are sent on a pool of ``max_in_flight`` threads while the bundle goes on, so a worker
keeps that many requests in flight. Each output keeps its own element's timestamp and window.
The DoFn never raises after sending: a failed bundle would be retried by the runner and send
its events twice, so every outcome, good or bad, becomes an output.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.utils.shared import Shared
from apache_beam.utils.windowed_value import WindowedValue

from transforms.counters import counter
from transforms.rate_limit import TokenBucket
from transforms.retry import RetryPolicy
from transforms.woopra_client import DeliveryOutcome, WoopraSender
from transforms.woopra_mapping import WoopraRequest

DEAD_LETTERS = "dead_letters"
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


class _DeliverFn(beam.DoFn):
    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings
        self.counters = {key: counter(key) for key in (
            "delivered_200", "delivered_202", "rejected", "retries_exhausted", "retried_requests")}

    def setup(self) -> None:
        settings = self.settings
        self.sender = _PROCESS_SENDERS.acquire(
            lambda: WoopraSender(settings.retry, settings.request_timeout, settings.max_in_flight,
                                 TokenBucket(settings.rate_limit)),
            tag=repr(settings))

    def start_bundle(self) -> None:
        self.in_flight: collections.deque[tuple[Future[DeliveryOutcome], Any, Any]] = collections.deque()

    def process(
        self, request: WoopraRequest, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam
    ) -> Iterator[Any]:
        self.in_flight.append((self.sender.submit(request), timestamp, window))
        # Keep the threads busy but bound memory: wait for the oldest once the queue is full.
        while self.in_flight and (
            len(self.in_flight) >= 2 * self.settings.max_in_flight or self.in_flight[0][0].done()
        ):
            yield self._emit(*self.in_flight.popleft())

    def finish_bundle(self) -> Iterator[Any]:
        while self.in_flight:
            yield self._emit(*self.in_flight.popleft())

    def _emit(self, future: Future[DeliveryOutcome], timestamp: Any, window: Any) -> Any:
        outcome = future.result()  # send() never raises
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
