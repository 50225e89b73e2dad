"""Deliver: send each ``WoopraRequest`` to Woopra, or in a dry run write it; failures become dead letters.

docs/behaviour.md#delivery and #dry-run.

Requests go to one sender per worker process (in a child process by default, see
transforms/delivery/process.py) while the bundle goes on, so a worker keeps ``max_in_flight``
requests in flight. Each output keeps its own element's timestamp and window.
The DoFn never raises after sending: a failed bundle would be retried by the runner and send
its events twice, so every outcome, good or bad, becomes an output. With a ledger
(docs/backfill.md#resuming-with-the-ledger), each delivered event is recorded as its answer
arrives, on the thread that receives it and before the bundle can see the answer, so the end of
the bundle (which makes the ledger durable) always comes after its keys.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.components.adaptive_throttler import ThrottlingSignaler
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared
from apache_beam.utils.windowed_value import WindowedValue

from transforms import interruption
from transforms.counters import NAMESPACE, counter
from transforms.delivery.ledger import LedgerWriter
from transforms.delivery.process import DeliveryProcess, PendingOutcome
from transforms.delivery.sender import DeliveryOutcome, WoopraSender
from transforms.delivery.settings import DeliverySettings
from transforms.failures import StepFailures
from transforms.file_output import WriteJsonLines
from transforms.rules.dead_letters import DEAD_LETTERS, DeadLetter, to_json_line
from transforms.rules.event_id import event_id, ledger_key
from transforms.rules.failure_cause import CAUSE_COUNTER_PREFIX, failure_cause
from transforms.rules.outcomes import RETRIED_REQUESTS, Outcome
from transforms.rules.woopra_mapping import WoopraRequest

# Requests handed to the sender per concurrent slot: enough queued that every slot has its next
# request ready while answers travel back (through a pipe, with the delivery process).
QUEUED_PER_SLOT = 8
# One sender per worker process, shared by every DoFn instance and thread in it: one token
# bucket holds the rate for the whole process, and keep-alive connections outlive bundles
# (the streaming DirectRunner sets up and tears down its DoFns for every bundle).
_PROCESS_SENDERS = Shared()
_PROCESS_LEDGERS = Shared()  # one ledger file per worker process
# A request being sent: a Future from the in-process sender, a PendingOutcome from the delivery process.
Pending = Future[DeliveryOutcome] | PendingOutcome
WAIT_STEP_SECONDS = 0.5  # how often a wait for an answer looks at the stop flag and the sender's figures


@dataclasses.dataclass(frozen=True)
class SendingSoFar:
    """What this process's Deliver steps have seen since their first request (the early warning's input)."""

    first_sent_at: float | None = None  # monotonic seconds
    delivered: int = 0
    failed_attempts: int = 0
    last_error: str = ""


class _SendingTally:
    """``SendingSoFar`` of this process, updated by the Deliver steps, read by the progress thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = SendingSoFar()

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._now = dataclasses.replace(self._now, **changes)

    def sent_one(self) -> None:
        if self._now.first_sent_at is None:
            self.update(first_sent_at=time.monotonic())

    def delivered_one(self) -> None:
        with self._lock:
            self._now = dataclasses.replace(self._now, delivered=self._now.delivered + 1)

    def read(self) -> SendingSoFar:
        with self._lock:
            return self._now


_SENDING = _SendingTally()


def sending_so_far() -> SendingSoFar:
    """What this process's Deliver steps have seen so far (local runners run them in this process)."""
    return _SENDING.read()


def _new_sender(settings: DeliverySettings) -> WoopraSender | DeliveryProcess:
    if settings.separate_process:
        return DeliveryProcess(settings)
    return WoopraSender(settings.retry, settings.request_timeout, settings.max_in_flight, settings.limiter())


class _DeliverFn(beam.DoFn):
    def __init__(self, settings: DeliverySettings, ledger: str | None = None, run_id: str = "") -> None:
        self.settings = settings
        self.ledger_folder = ledger
        self.run_id = run_id
        self.outcomes = {outcome: counter(outcome) for outcome in (
            Outcome.DELIVERED_200, Outcome.DELIVERED_202, Outcome.REJECTED, Outcome.RETRIES_EXHAUSTED)}
        self.retried_requests = counter(RETRIED_REQUESTS)
        self.failures = StepFailures("Deliver")

    def setup(self) -> None:
        settings = self.settings
        self.sender = _PROCESS_SENDERS.acquire(lambda: _new_sender(settings), tag=repr(settings))
        # Visible in Dataflow's console: Woopra's pushback and the rate we send at because of it.
        self.rate_limited_counter = Metrics.counter(NAMESPACE, "rate_limited_responses")
        self.send_rate_gauge = Metrics.gauge(NAMESPACE, "send_rate_per_second")
        self.throttling = ThrottlingSignaler(NAMESPACE)
        self._reported_at = time.monotonic()
        self.ledger: LedgerWriter | None = None
        if self.ledger_folder:
            folder, run_id = self.ledger_folder, self.run_id
            self.ledger = _PROCESS_LEDGERS.acquire(lambda: LedgerWriter(folder, run_id), tag=f"{folder} {run_id}")

    def teardown(self) -> None:
        if self.ledger is not None:
            self.ledger.flush()

    def start_bundle(self) -> None:
        self.in_flight: collections.deque[tuple[Pending, Any, Any]] = collections.deque()

    def process(
        self, request: WoopraRequest, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam
    ) -> Iterator[Any]:
        # Once the run is stopped nothing more is sent: the summary counts the rest as not processed.
        if not interruption.stop_requested():
            yield from self._submit(request, timestamp, window)
        # Keep the threads busy but bound memory: wait for the oldest once the queue is full.
        while self.in_flight and (
            len(self.in_flight) >= QUEUED_PER_SLOT * self.settings.max_in_flight or self.in_flight[0][0].done()
        ):
            yield from self._emit(*self.in_flight.popleft())

    def _submit(self, request: WoopraRequest, timestamp: Any, window: Any) -> Iterator[Any]:
        _SENDING.sent_one()
        try:
            on_answer = None
            if self.ledger is not None:
                on_answer = _RecordIfDelivered(self.ledger, ledger_key(request.visitor, event_id(request.event)))
            future = self.sender.submit(request, on_answer)
        except Exception as exc:  # noqa: BLE001 - e.g. a URL that cannot be encoded: this event's dead letter
            yield self.failures.dead_letter(exc, request.event, attributes=request.attributes)
            return
        self.in_flight.append((future, timestamp, window))

    def finish_bundle(self) -> Iterator[Any]:
        while self.in_flight:
            yield from self._emit(*self.in_flight.popleft())
        if self.ledger is not None:
            self.ledger.flush()
        self._report_pushback(force=True)

    def _report_pushback(self, force: bool = False) -> None:
        """Beam metrics must be updated on the bundle's thread: copy the sender's figures (the
        same whether the sender is in this process or in the delivery process)."""
        now = time.monotonic()
        if not force and now - self._reported_at < 1.0:
            return
        self._reported_at = now
        pushback = self.sender.pushback()
        _SENDING.update(failed_attempts=pushback.failed_attempts, last_error=pushback.last_error)
        news = self.sender.pushback_reporter.unreported(pushback)
        if news.rate_limited:
            self.rate_limited_counter.inc(news.rate_limited)
        if news.throttled_seconds:
            self.throttling.signal_throttled(int(news.throttled_seconds))
        if news.send_rate is not None:
            self.send_rate_gauge.set(int(news.send_rate))

    def _answer(self, future: Pending) -> DeliveryOutcome | None:
        """The request's outcome (send() never raises); None when the run was stopped and the
        answer did not come within the grace time."""
        while True:
            wait = WAIT_STEP_SECONDS
            if interruption.stop_requested():
                wait = min(wait, interruption.grace_left())
                if wait <= 0 and not future.done():
                    return None
            try:
                return future.result(timeout=wait)
            except TimeoutError:
                pushback = self.sender.pushback()
                _SENDING.update(failed_attempts=pushback.failed_attempts, last_error=pushback.last_error)

    def _emit(self, future: Pending, timestamp: Any, window: Any) -> Iterator[Any]:
        outcome = self._answer(future)
        if outcome is None:
            return  # no answer before the stop: neither delivered nor a dead letter (not processed)
        self._report_pushback()
        self.outcomes[outcome.result].inc()
        if outcome.attempts > 1:
            self.retried_requests.inc(outcome.attempts - 1)
        if outcome.delivered:
            _SENDING.delivered_one()
            yield WindowedValue(outcome, timestamp, (window,))
            return
        cause = failure_cause(outcome.error, outcome.status, outcome.request.url)
        counter(f"{CAUSE_COUNTER_PREFIX}{outcome.result}: {cause}").inc()
        yield pvalue.TaggedOutput(DEAD_LETTERS, WindowedValue(outcome.dead_letter(), timestamp, (window,)))


class _RecordIfDelivered:
    """Records a delivered request's event in the ledger, on the thread its answer arrives on,
    before the answer is handed on. A rejected event or one whose retries ran out is not recorded:
    a resumed run sends it again (docs/backfill.md#resuming-with-the-ledger)."""

    __slots__ = ("ledger", "key")

    def __init__(self, ledger: LedgerWriter, key: bytes) -> None:
        self.ledger = ledger
        self.key = key

    def __call__(self, outcome: DeliveryOutcome) -> None:
        if outcome.delivered:
            self.ledger.record(self.key)


def _request_line(request: WoopraRequest) -> str:
    return to_json_line(request.as_record())


class _WouldSendFn(beam.DoFn):
    """Dry run: count each request ``would_send`` and pass it on to be written."""

    def __init__(self) -> None:
        self.would_send = counter(Outcome.WOULD_SEND)

    def process(self, request: WoopraRequest) -> Iterator[WoopraRequest]:
        self.would_send.inc()
        yield request


class SendOutcomes(NamedTuple):
    """The send step's outputs, as the graph reads them: ``delivered`` and ``dead_letters``."""

    delivered: beam.PCollection
    dead_letters: beam.PCollection


def checkpoint_outcomes(outcomes: beam.pvalue.DoOutputsTuple) -> SendOutcomes:
    """Commit every outcome of Send before anything reads it (docs/delivery.md, On Dataflow).

    Without it a runner fuses Send with what follows (the dead-letter publish or files) into one
    work item: when that later write fails (a missing Pub/Sub publisher role),
    the whole item is retried and its requests are sent again, without limit in streaming. A
    reshuffle is a checkpoint on Dataflow: the steps after it retry from the committed outcomes.
    Reshuffle keeps each element's timestamp and window.
    """
    return SendOutcomes(
        delivered=outcomes.delivered | "CheckpointDelivered" >> beam.Reshuffle(),
        dead_letters=outcomes[DEAD_LETTERS] | "CheckpointDeadLetters" >> beam.Reshuffle(),
    )


class DeliverToWoopra(beam.PTransform):
    """Send requests to Woopra; outputs ``delivered`` outcomes and ``dead_letters``.

    With ``dry_run_path`` nothing is sent: each request is counted ``would_send`` and written as
    a JSON line under that path (``delivered`` then holds the requests, ``dead_letters`` nothing).
    """

    def __init__(
        self,
        settings: DeliverySettings,
        dry_run_path: str | None = None,
        window_seconds: float | None = None,
        run_id: str = "",
        ledger: str | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.dry_run_path = dry_run_path
        self.window_seconds = window_seconds
        self.run_id = run_id
        self.ledger = ledger

    def expand(self, requests: beam.PCollection):  # DoOutputsTuple or SendOutcomes; not a hint Beam takes
        if not self.dry_run_path:
            if self.settings.spread_over_workers:
                # Each worker process sends at its share of the job's rate (pipeline/dataflow_rules.py,
                # worker_processes), which only adds up to the job's rate if every process gets
                # requests: a batch stage fed by one file otherwise runs in one process. The
                # reshuffle is also a checkpoint: a runner that retries a failed upstream stage
                # does not send its requests again (docs/backfill.md#on-dataflow). One local
                # process gains nothing from it and would hold every request in the shuffle.
                requests = requests | "SpreadOverWorkers" >> beam.Reshuffle()
            # Outcomes leave as WindowedValues (each keeps its request's timestamp and window),
            # which Beam's hints cannot say: the types are given here.
            send = beam.ParDo(_DeliverFn(self.settings, self.ledger, self.run_id)).with_output_types(
                DeliveryOutcome, dead_letters=DeadLetter)
            outcomes = requests | "Send" >> send.with_outputs(DEAD_LETTERS, main="delivered")
            if self.settings.spread_over_workers:
                return checkpoint_outcomes(outcomes)
            return outcomes
        would_send = requests | "CountWouldSend" >> beam.ParDo(_WouldSendFn()).with_outputs(
            DEAD_LETTERS, main="delivered")
        _ = would_send.delivered | "WriteRequests" >> WriteJsonLines(
            self.dry_run_path, "requests", self.window_seconds, self.run_id, to_line=_request_line)
        return would_send
