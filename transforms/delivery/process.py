"""The HTTP work of delivery in a child process, so it runs on a core of its own.

In one Python process the pipeline's own work (parsing, identity, mapping, Beam's overhead)
and the HTTP client's take turns on the GIL, and delivery costs more CPU per event than the same
requests from a client alone. ``DeliveryProcess`` moves the client (``WoopraSender``: rate limit,
retries, keep-alive) into a child process and talks to it through a pipe in batches, so a worker
process with two cores delivers faster (the measurements: BENCHMARKS.md, benchmark 1).

Same interface as ``WoopraSender`` (``submit``, ``send``, ``close``, ``pushback``). The parent sends
the request's parts and the child encodes the URL: the child has CPU to spare, the parent runs
the rest of the pipeline. Answers come back as plain tuples, which pickle in C, and each becomes
an ``PendingOutcome``: a ``Future`` without a lock of its own.
The child's rate limiter and Woopra's pushback (429s, the adaptive rate) live in the child: it
sends their figures with every batch of answers, so the DoFn reports the same Beam metrics as
with an in-process sender. If the child dies, every request it had not answered ends as
``retries_exhausted`` with the reason, so it goes to the dead letter and nothing is lost.

The child ignores Ctrl-C (SIGINT reaches the whole foreground process group): its parent decides
when delivery stops. It ends when the parent asks, or at once when the parent's end of the pipe
closes, which is also what happens when the parent dies.
"""

from __future__ import annotations

import itertools
import multiprocessing
import signal
import threading
import weakref
from typing import TYPE_CHECKING, Any

from transforms.delivery.sender import DeliveryOutcome, OnAnswer, Pushback, PushbackReporter, SendResult, WoopraSender
from transforms.rules.outcomes import Outcome
from transforms.rules.woopra_mapping import WoopraRequest

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from transforms.delivery.settings import DeliverySettings

BATCH = 64  # requests or outcomes per pipe message
FLUSH_SECONDS = 0.002  # the longest a request or an outcome waits to fill a batch
FAILURES_EVERY_SECONDS = 1.0  # how often failed attempts are reported while no answer comes back


_OUTCOMES = {outcome.value: outcome for outcome in Outcome}


class PendingOutcome:
    """What ``DeliveryProcess.submit`` returns: the ``Future`` methods the Deliver step uses
    (``done``, ``result``), with one lock per delivery process instead of one per request;
    answers are set a batch at a time. ``on_answer(outcome)``, if given, runs before the outcome
    is set, so whoever sees the outcome sees what ``on_answer`` did (the ledger's key)."""

    __slots__ = ("_answered", "_outcome", "_on_answer")

    def __init__(self, answered: threading.Condition, on_answer: OnAnswer | None = None) -> None:
        self._answered = answered
        self._outcome: DeliveryOutcome | None = None
        self._on_answer = on_answer

    def done(self) -> bool:
        return self._outcome is not None

    def result(self, timeout: float | None = None) -> DeliveryOutcome:
        """The outcome, waiting for it if need be (``TimeoutError`` after ``timeout`` seconds)."""
        outcome = self._outcome
        if outcome is None:
            with self._answered:
                if not self._answered.wait_for(self.done, timeout):
                    raise TimeoutError(f"no answer within {timeout} s")
                outcome = self._outcome
        assert outcome is not None
        return outcome


def _set_outcomes(answered: threading.Condition, outcomes: list[tuple[PendingOutcome, DeliveryOutcome]]) -> None:
    """Run a batch of answers' ``on_answer``, then set them and wake whoever waits for one."""
    for answer, outcome in outcomes:
        if answer._on_answer is not None:
            answer._on_answer(outcome)
    with answered:
        for answer, outcome in outcomes:
            answer._outcome = outcome
        answered.notify_all()


class _Batcher:
    """Collects items and sends them over a connection in batches, from any thread."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._items: list[Any] = []
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self.closed = False
        threading.Thread(target=self._flush_regularly, name="pipe-flusher", daemon=True).start()

    def add(self, item: Any) -> None:
        with self._lock:
            self._items.append(item)
            count = len(self._items)
        if count >= BATCH:
            self.flush()
        elif count == 1:  # wake the flusher once per batch, not once per item
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        if items and not self.closed:
            with self._send_lock:
                try:
                    self._connection.send(items)
                except (OSError, EOFError, ValueError):
                    self.closed = True

    def _flush_regularly(self) -> None:
        while not self.closed:
            self._wake.wait()
            self._wake.clear()
            self._wake.wait(FLUSH_SECONDS)  # let a batch fill up a little
            self.flush()

    def close(self, last: Any = ...) -> None:
        """Send what is left (and ``last``, when given, as a message of its own), then stop."""
        self.flush()
        if last is not ... and not self.closed:
            with self._send_lock:
                try:
                    self._connection.send(last)
                except (OSError, EOFError, ValueError):
                    pass
        self.closed = True
        self._wake.set()


def _serve(connection: Connection, settings: DeliverySettings) -> None:
    """The child: send every request that arrives, answer each with its outcome (``_Child``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to act on
    _Child(connection, settings).serve()


class _Child:
    """The delivery process's work. Its main thread only reads the pipe; everything else happens
    on the sender's event loop thread, one wake-up per batch of requests, so the two barely
    contend. Each batch of answers goes with the sender's pushback figures: ``(answers, Pushback)``.
    """

    def __init__(self, connection: Connection, settings: DeliverySettings) -> None:
        self.connection = connection
        self.settings = settings
        self.sender = WoopraSender(settings.retry, settings.request_timeout, settings.max_in_flight,
                                   settings.limiter())
        self.answers: list[tuple] = []
        self.flush_pending = False
        self.submitted = 0  # written by the main thread only
        self.answered = 0  # written by the loop thread only
        self.all_answered = threading.Event()
        self.stopping = False
        self.reported_failures = 0

    def serve(self) -> None:
        self.sender.call_soon_threadsafe(self.report_failures)
        try:
            while True:
                try:
                    batch = self.connection.recv()
                except (EOFError, OSError):
                    return  # the parent is gone: nobody to answer, stop now (its requests are cancelled)
                if batch is None:
                    break  # the parent asks us to stop: finish what was sent first
                self.submitted += len(batch)
                self.sender.submit_requests(batch, self.on_result)
            self.stopping = True
            self.sender.call_soon_threadsafe(self.flush)
            self.all_answered.wait(timeout=self.settings.retry.max_retry_seconds + 60)
        finally:
            self.connection.close()  # the parent's reader sees EOF
            self.sender.close()

    def _send(self, message: tuple) -> None:
        try:
            self.connection.send(message)
        except (OSError, EOFError, ValueError):
            pass  # the parent is gone: nobody to answer

    def flush(self) -> None:  # on the loop thread
        self.flush_pending = False
        if self.answers:
            batch = self.answers[:]
            self.answers.clear()
            self._send((batch, self.sender.pushback()))
        if self.stopping and self.answered == self.submitted:
            self.all_answered.set()

    def report_failures(self) -> None:  # on the loop thread, every second
        # While every request is being retried no answer comes back, and with none no figures:
        # failed attempts are reported on their own, so the parent can say what goes wrong.
        if not self.stopping:
            self.sender.call_soon(self.report_failures, FAILURES_EVERY_SECONDS)
        if self.sender.failed_attempts != self.reported_failures and not self.answers:
            self.reported_failures = self.sender.failed_attempts
            self._send(([], self.sender.pushback()))

    def on_result(self, request_id: int, sent: SendResult) -> None:  # on the loop thread
        self.answered += 1
        self.answers.append((request_id, sent.result.value, *sent[1:]))  # plain values pickle in C
        if len(self.answers) >= BATCH or (self.stopping and self.answered == self.submitted):
            self.flush()
        elif not self.flush_pending:
            self.flush_pending = True
            self.sender.call_soon(self.flush, FLUSH_SECONDS)


class DeliveryProcess:
    """A ``WoopraSender`` in a child process (spawned, so no inherited threads or sockets)."""

    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_end, settings), name="woopra-delivery",
                                        daemon=True)
        self._process.start()
        child_end.close()
        self._ids = itertools.count()
        self._pending: dict[int, tuple[PendingOutcome, WoopraRequest]] = {}
        self._pending_lock = threading.Lock()
        self._answered = threading.Condition()
        self._requests = _Batcher(self._connection)
        self._child_gone = False  # set by the reader at EOF, before it fails what is pending
        self._pushback = Pushback()  # the child's latest figures
        self.pushback_reporter = PushbackReporter()
        self._reader = threading.Thread(target=self._read_outcomes, name="woopra-delivery-reader", daemon=True)
        self._reader.start()
        self._finalizer = weakref.finalize(self, _stop, self._requests, self._connection, self._process)

    def submit(self, request: WoopraRequest, on_answer: OnAnswer | None = None) -> PendingOutcome:
        """Start sending one request; the answer completes with its outcome, after ``on_answer(outcome)``."""
        answer = PendingOutcome(self._answered, on_answer)
        request_id = next(self._ids)
        with self._pending_lock:
            self._pending[request_id] = (answer, request)
        # Only what the child needs: the event itself stays here for the dead letter.
        self._requests.add((request_id, request.url, request.params, request.user_agent))
        # Checked after the request is pending: whichever of this thread and the reader comes
        # second fails it, so a request submitted as the child dies is never left waiting.
        if self._requests.closed or self._child_gone:
            self._fail_pending("the delivery process is not running")
        return answer

    def send(self, request: WoopraRequest) -> DeliveryOutcome:
        """Send one request and wait for its outcome."""
        return self.submit(request).result()

    def _read_outcomes(self) -> None:
        while True:
            try:
                message = self._connection.recv()
            except (EOFError, OSError):
                break
            answers, self._pushback = message
            with self._pending_lock:
                pending = [self._pending.pop(answer[0]) for answer in answers]
            _set_outcomes(self._answered, [
                (waiting, DeliveryOutcome(request, SendResult(_OUTCOMES[answer[1]], *answer[2:])))
                for (waiting, request), answer in zip(pending, answers, strict=True)])
        self._child_gone = True
        self._fail_pending("the delivery process stopped before answering")

    def pushback(self) -> Pushback:
        """Woopra's pushback as the child last reported it (with its latest answers)."""
        return self._pushback

    @property
    def rate_limited(self) -> int:
        """429 answers the child has seen so far."""
        return self._pushback.rate_limited

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self._process.pid

    def _fail_pending(self, error: str) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        _set_outcomes(self._answered, [
            (answer, DeliveryOutcome(request, SendResult(Outcome.RETRIES_EXHAUSTED, None, 0, error)))
            for answer, request in pending.values() if not answer.done()])

    def close(self) -> None:
        """Let the child finish what it has, then stop it."""
        self._finalizer()


def _stop(requests: _Batcher, connection: Connection, process: multiprocessing.process.BaseProcess) -> None:
    # A stop message, not a closed pipe: closing a connection that our reader thread is blocked
    # on would not wake the child. The child finishes its requests, answers, closes its end.
    requests.close(last=None)
    process.join(timeout=60)
    if process.is_alive():
        process.kill()
    connection.close()
