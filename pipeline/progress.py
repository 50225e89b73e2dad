"""Progress: a one-line report of the job's counters at a fixed interval, streaming and batch.

A batch run on a local runner also shows the share of its input read and an ETA
(docs/operations.md#progress-and-the-plan).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineResult, PipelineState

from pipeline.job_settings import JobSettings
from pipeline.plan import about
from transforms.counters import process_tally
from transforms.deliver import SendingSoFar, sending_so_far
from transforms.read_events import BYTES_READ, input_bytes
from transforms.rules.failure_cause import failure_cause
from transforms.rules.outcomes import READ, RETRIED_REQUESTS, Group, Outcome

log = logging.getLogger("pipeline.progress")

# Outcomes of a backfill, shown beside the filtered total when they happened.
BACKFILL_OUTCOMES = (Outcome.DUPLICATE, Outcome.SKIPPED_LEDGER, Outcome.OUT_OF_RANGE)
# Runners that run the DoFns in this process, so its tally holds the job's counts.
IN_PROCESS_RUNNERS = ("fnapirunner", "bundlebaseddirectrunner")
RECENT_INTERVALS = 3  # the ETA's rate is measured over this many intervals
FIRST_LINE_SECONDS = 5.0  # a batch run's first line comes this soon, then one per interval
EARLY_WARNING_SECONDS = 10.0  # a run that has delivered nothing this long after its first request says why


def _keys(group: Group) -> tuple[str, ...]:
    return tuple(str(outcome) for outcome in Outcome if outcome.group is group)


def finished_events(counts: Mapping[str, int]) -> int:
    """Events that have reached their outcome (delivered, dead-lettered or filtered)."""
    return sum(int(counts.get(str(outcome), 0)) for outcome in Outcome)


def progress_line(counts: Mapping[str, int], previous: Mapping[str, int], seconds: float) -> str:
    """``read=… delivered=… dead_lettered=… filtered=… [duplicate=…] retried=… | … read/s, … delivered/s``.

    ``duplicate``, ``skipped_ledger`` and ``out_of_range`` (part of ``filtered``) show when not zero.
    """

    def total(group: Group, source: Mapping[str, int]) -> int:
        return sum(int(source.get(key, 0)) for key in _keys(group))

    read, delivered = int(counts.get(READ, 0)), total(Group.SENT, counts)
    read_rate = (read - int(previous.get(READ, 0))) / seconds if seconds > 0 else 0.0
    delivered_rate = (delivered - total(Group.SENT, previous)) / seconds if seconds > 0 else 0.0
    backfill = "".join(f" {outcome}={counts[outcome]}" for outcome in BACKFILL_OUTCOMES if counts.get(outcome))
    return (f"progress: read={read} delivered={delivered} dead_lettered={total(Group.DEAD_LETTERED, counts)} "
            f"filtered={total(Group.FILTERED, counts)}{backfill} retried={int(counts.get(RETRIED_REQUESTS, 0))} "
            f"| {read_rate:.1f} read/s, {delivered_rate:.1f} delivered/s")


def size(n_bytes: float) -> str:
    """Bytes as ``812 B``, ``3.4 KiB``, ``12.0 MiB``, ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Sample:
    """A batch run's counts at one moment (``at``: monotonic seconds)."""

    at: float
    read: int
    finished: int  # events that reached their outcome (``finished_events``)
    bytes_read: int

    @classmethod
    def of(cls, counts: Mapping[str, int], at: float) -> Sample:
        """The sample of ``counts`` taken at ``at``."""
        return cls(at, int(counts.get(READ, 0)), finished_events(counts), int(counts.get(BYTES_READ, 0)))


def eta_seconds(oldest: Sample, newest: Sample, total_bytes: int) -> float | None:
    """Seconds until every event of the input has reached its outcome, or None while there is no telling.

    The input's events are estimated from the share of its bytes read (``read / share``), and
    the ones left reach theirs at the rate events did between the two samples. Outcomes, not
    read: when the events are read ahead of sending (a reshuffle before delivery), the bytes
    are all read long before the end; when they are not, both rates are the same.
    """
    if total_bytes <= 0 or newest.bytes_read <= 0 or newest.at <= oldest.at:
        return None
    rate = (newest.finished - oldest.finished) / (newest.at - oldest.at)
    expected = newest.read / min(1.0, newest.bytes_read / total_bytes)
    left = max(0.0, expected - newest.finished)
    if left == 0:
        return 0.0
    return left / rate if rate > 0 else None


def input_part(bytes_read: int, total_bytes: int, eta: float | None) -> str:
    """``input 42.1% of 12.0 MiB, ETA about 3 min`` (``ETA unknown`` before any rate)."""
    share = 100.0 * min(bytes_read, total_bytes) / total_bytes if total_bytes > 0 else 0.0
    return f"input {share:.1f}% of {size(total_bytes)}, ETA {about(eta) if eta is not None else 'unknown'}"


def batch_progress_line(history: Sequence[Sample], counts: Mapping[str, int], previous: Mapping[str, int],
                        total_bytes: int | None) -> str:
    """The progress line with the share of the input read and the ETA when the input's size is known."""
    newest, last = history[-1], history[-2] if len(history) > 1 else history[-1]
    line = progress_line(counts, previous, newest.at - last.at)
    if total_bytes is None:
        return line
    # The rate counts from the last moment no event had reached its outcome yet: a batch job first reads its
    # input for identity, and that wait says nothing about the sending rate.
    oldest = next((sample for sample in reversed(history) if sample.finished == 0), history[0])
    return f"{line} | {input_part(newest.bytes_read, total_bytes, eta_seconds(oldest, newest, total_bytes))}"


def watch(
    result: PipelineResult, interval: float, stop: threading.Event, counts: Callable[[], dict[str, int]]
) -> dict[str, int]:
    """Log progress every ``interval`` seconds until the job ends or ``stop`` is set."""
    previous: dict[str, int] = {}
    last = time.monotonic()
    while not stop.wait(timeout=min(1.0, interval)):
        if PipelineState.is_terminal(result.state):
            break
        now = time.monotonic()
        if now - last >= interval:
            current = counts()
            log.info(progress_line(current, previous, now - last))
            previous, last = current, now
    final = counts()
    log.info(progress_line(final, previous, time.monotonic() - last))
    return final


def counts_in_this_process(options: PipelineOptions) -> bool:
    """Whether the runner runs the job's DoFns in this process, so ``process_tally`` holds its counts.

    Beam's local runners do, except in ``--direct_running_mode=multi_processing``, where the
    counts are in the worker processes until the end; so are they on a job service or Prism.
    """
    runner = options.view_as(StandardOptions).runner
    name = (runner if isinstance(runner, str) else type(runner).__name__).rsplit(".", 1)[-1].lower()
    if name not in IN_PROCESS_RUNNERS and name + "runner" not in IN_PROCESS_RUNNERS:
        return False
    return options.view_as(DirectOptions).direct_running_mode != "multi_processing"


def since(baseline: Mapping[str, int], counts: Mapping[str, int]) -> dict[str, int]:
    """What was counted after ``baseline`` (a process may have run other pipelines before)."""
    return {key: value - int(baseline.get(key, 0)) for key, value in counts.items()}


def _total_bytes(patterns: str) -> int | None:
    try:
        return input_bytes(patterns)
    except Exception as exc:  # noqa: BLE001 - progress is a help: go on without the share
        log.info("progress: the input's size is unknown (%s: %s); no share or ETA", type(exc).__name__, exc)
        return None


def early_warning(so_far: SendingSoFar, now: float, endpoint: str) -> str | None:
    """What to say when nothing was delivered ``EARLY_WARNING_SECONDS`` after the first request; ``""``
    once there is nothing to say any more (delivery works), None while it is too early to tell."""
    if so_far.first_sent_at is None or now - so_far.first_sent_at < EARLY_WARNING_SECONDS:
        return None
    if so_far.delivered:
        return ""
    seconds = f"{EARLY_WARNING_SECONDS:g} s"
    if so_far.failed_attempts:
        return (f"nothing delivered in the first {seconds} of sending: every attempt failed "
                f"({so_far.failed_attempts} so far), the last with {failure_cause(so_far.last_error, None, endpoint)}; "
                f"each request is retried up to --max_attempts, then dead-lettered")
    return f"nothing delivered in the first {seconds} of sending: no answer yet from {endpoint}"


def watch_batch(interval: float, stop: threading.Event, patterns: str,
                counts: Callable[[], dict[str, int]] = process_tally, endpoint: str = "") -> None:
    """Log a batch run's progress until ``stop`` is set: a first line within ``FIRST_LINE_SECONDS``,
    then one every ``interval`` seconds, and a warning when nothing is delivered at first.

    The input's size is measured here, in the background, so that matching a large bucket does
    not hold up the job's start.
    """
    baseline = counts()
    started = time.monotonic()
    total_bytes = _total_bytes(patterns)
    history: deque[Sample] = deque([Sample.of({}, started)], maxlen=RECENT_INTERVALS + 1)
    previous: dict[str, int] = {}
    next_line = started + min(interval, FIRST_LINE_SECONDS)
    warned = False
    while not stop.wait(timeout=max(0.0, min(1.0, next_line - time.monotonic()))):
        now = time.monotonic()
        if not warned and endpoint:
            warning = early_warning(sending_so_far(), now, endpoint)
            if warning is not None:
                warned = True
                if warning:
                    log.warning(warning)
        if now < next_line:
            continue
        current = since(baseline, counts())
        history.append(Sample.of(current, now))
        log.info(batch_progress_line(history, current, previous, total_bytes))
        previous = current
        next_line = now + interval


@contextlib.contextmanager
def batch_progress(options: PipelineOptions, job: JobSettings) -> Iterator[None]:
    """Log progress while the ``with`` block runs a local batch job (see ``watch_batch``)."""
    if not counts_in_this_process(options):
        log.info("progress: not shown on this runner: the counts are in its worker processes until the end "
                 "(the summary follows)")
        yield
        return
    stop = threading.Event()
    endpoint = "" if job.dry_run else job.woopra.endpoint
    watcher = threading.Thread(target=watch_batch, args=(job.progress_interval_seconds, stop, job.source),
                               kwargs={"endpoint": endpoint}, name="batch-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=5)
