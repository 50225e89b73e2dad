"""Send imports: POST each import body to Woopra's Import API, or in a dry run write it.

docs/backfill.md#the-import-sink.

Every event of an accepted body is counted ``imported`` (``would_import`` in a dry run); the events
of a rejected visit are counted ``rejected`` (with Woopra's answer), those of a visit whose retries
ran out ``retries_exhausted``, and leave as ``NotImported`` records, which transforms/rejected_visits.py
turns into their dead letters. With a ledger, every event of a visit is recorded as the
answer that imported it arrives, before the bundle sees it, so a rerun skips the visit
(docs/backfill.md#resuming-with-the-ledger). Like the tracking path's Deliver step, the DoFn never
raises after sending: a retried bundle would import its visits again.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.shared import Shared
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from transforms.counters import counter
from transforms.delivery.import_sender import (
    BodyOutcome,
    ImportCredentials,
    ImportDelivery,
    ImportSender,
    NotImported,
    VisitResult,
)
from transforms.delivery.ledger import LedgerWriter
from transforms.file_output import file_prefix, owner_only_files
from transforms.rules.import_visits import ImportBody, VisitLine
from transforms.rules.outcomes import IMPORT_CALLS, RETRIED_REQUESTS, Outcome

NOT_IMPORTED = "not_imported"  # the tagged output of the calls of visits Woopra did not import
_SENDERS = Shared()  # one sender per worker process: one call budget for every DoFn instance in it
_LEDGERS = Shared()


class _Sender:
    """A process's sender (``Shared`` needs an object it can weakly reference)."""

    def __init__(self, settings: ImportDelivery, credentials: ImportCredentials) -> None:
        self.sender = ImportSender(settings, credentials)


def _event_time(visit: VisitLine, at: int) -> Timestamp:
    return Timestamp.of(visit.times[at] / 1000.0)


def _not_imported(result: VisitResult) -> Iterator[Any]:
    visit = result.visit
    for at, key in enumerate(visit.keys):
        record = NotImported(key, str(result.result), result.error, result.status, result.response_body,
                             result.attempts)
        yield pvalue.TaggedOutput(NOT_IMPORTED, WindowedValue(record, _event_time(visit, at), (GlobalWindow(),)))


class _SendImportsFn(beam.DoFn):
    def __init__(self, settings: ImportDelivery, credentials: ImportCredentials, ledger: str | None,
                 run_id: str) -> None:
        self.settings = settings
        self.credentials = credentials
        self.ledger_folder = ledger
        self.run_id = run_id
        self.outcomes = {outcome: counter(outcome) for outcome in (
            Outcome.IMPORTED, Outcome.REJECTED, Outcome.RETRIES_EXHAUSTED)}
        self.calls = counter(IMPORT_CALLS)
        self.retried = counter(RETRIED_REQUESTS)

    def setup(self) -> None:
        settings, credentials = self.settings, self.credentials
        self.sender = _SENDERS.acquire(lambda: _Sender(settings, credentials),
                                       tag=f"{settings!r} {credentials.app_id}").sender
        self.ledger: LedgerWriter | None = None
        if self.ledger_folder:
            folder, run_id = self.ledger_folder, self.run_id
            self.ledger = _LEDGERS.acquire(lambda: LedgerWriter(folder, run_id), tag=f"{folder} {run_id} import")

    def start_bundle(self) -> None:
        self.in_flight: collections.deque[Future[BodyOutcome]] = collections.deque()

    def process(self, body: ImportBody) -> Iterator[Any]:
        self.in_flight.append(self.sender.submit(body, self._record))
        while self.in_flight and (len(self.in_flight) > 2 * self.settings.max_in_flight or self.in_flight[0].done()):
            yield from self._emit(self.in_flight.popleft())

    def finish_bundle(self) -> Iterator[Any]:
        while self.in_flight:
            yield from self._emit(self.in_flight.popleft())
        if self.ledger is not None:
            self.ledger.flush()

    def _record(self, visit: VisitLine) -> None:
        if self.ledger is not None:
            for key in visit.keys:
                self.ledger.record(key)

    def _emit(self, future: Future[BodyOutcome]) -> Iterator[Any]:
        outcome = future.result()  # deliver() never raises
        self.calls.inc(outcome.calls)
        self.retried.inc(outcome.retries)
        for result in outcome.results:
            events = len(result.visit.keys)
            self.outcomes[result.result].inc(events)
            if result.result is Outcome.IMPORTED:
                for at in range(events):
                    yield WindowedValue(at, _event_time(result.visit, at), (GlobalWindow(),))
            else:
                yield from _not_imported(result)


class _WriteBodiesFn(beam.DoFn):
    """Dry run: write each body as it would be sent, one NDJSON file per body; count ``would_import``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.would_import = counter(Outcome.WOULD_IMPORT)
        self.calls = counter(IMPORT_CALLS)

    def setup(self) -> None:
        owner_only_files()

    def process(self, body: ImportBody) -> Iterator[Any]:
        path = f"{self.prefix}-{body.body_id()}.ndjson"
        if "://" not in path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with FileSystems.create(path, mime_type="application/x-ndjson") as file:
            file.write(body.payload())
        self.calls.inc()
        for visit in body.visits:
            self.would_import.inc(len(visit.keys))
            for at in range(len(visit.keys)):
                yield WindowedValue(at, _event_time(visit, at), (GlobalWindow(),))


class SendImports(beam.PTransform):
    """POST import bodies (or, with ``dry_run_path``, write them): outputs ``imported`` and ``not_imported``."""

    def __init__(self, settings: ImportDelivery, credentials: ImportCredentials | None,
                 dry_run_path: str | None = None, run_id: str = "", ledger: str | None = None,
                 spread_over_workers: bool = False) -> None:
        super().__init__()
        self.spread_over_workers = spread_over_workers
        self.settings = settings
        self.credentials = credentials
        self.dry_run_path = dry_run_path
        self.run_id = run_id
        self.ledger = ledger

    def expand(self, bodies: beam.PCollection):  # a DoOutputsTuple; Beam takes no hint for it
        if self.dry_run_path:
            prefix = file_prefix(self.dry_run_path, "import", self.run_id)
            write = beam.ParDo(_WriteBodiesFn(prefix)).with_output_types(int, not_imported=NotImported)
            return bodies | "WriteBodies" >> write.with_outputs(NOT_IMPORTED, main="imported")
        assert self.credentials is not None, "sending needs credentials (pipeline/options.py checks them)"
        if self.spread_over_workers:
            # Bodies to every worker, and a checkpoint: a retried stage upstream does not send again.
            # One local process gains nothing from it and would hold every body in the shuffle.
            bodies = bodies | "SpreadBodies" >> beam.Reshuffle()
        send = beam.ParDo(_SendImportsFn(self.settings, self.credentials, self.ledger, self.run_id))
        return bodies | "Send" >> send.with_output_types(int, not_imported=NotImported).with_outputs(
            NOT_IMPORTED, main="imported")
