"""Select to send: a backfill's slice of event time and the events an earlier run delivered.

docs/backfill.md. An event outside ``--start``/``--end`` is counted ``out_of_range``; one whose
ledger key (its visitor and id) is in the ledger read at launch is counted ``skipped_ledger``.
Neither is sent nor dead-lettered. The step comes after identity, so both still told identity what
their visitor said.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam.utils.shared import Shared

from transforms.counters import counter
from transforms.delivery.ledger import read_delivered
from transforms.rules.event_id import event_id, ledger_key
from transforms.rules.events import Event
from transforms.rules.outcomes import Outcome
from transforms.rules.time_range import TimeRange

# The ledger's keys, read once per worker process and shared by its DoFn instances.
_DELIVERED = Shared()


class _SelectToSendFn(beam.DoFn):
    def __init__(self, time_range: TimeRange, ledger_files: tuple[str, ...]) -> None:
        self.time_range = time_range
        self.ledger_files = ledger_files
        self.out_of_range = counter(Outcome.OUT_OF_RANGE)
        self.skipped_ledger = counter(Outcome.SKIPPED_LEDGER)

    def setup(self) -> None:
        files = self.ledger_files
        self.delivered = _DELIVERED.acquire(lambda: read_delivered(files), tag=repr(files))

    def process(self, event: Event) -> Iterator[Event]:
        if not self.time_range.contains(event.timestamp_ms):
            self.out_of_range.inc()
            return
        if self.delivered and ledger_key(event.visitor, event_id(event.original)) in self.delivered:
            self.skipped_ledger.inc()
            return
        yield event


class SelectToSend(beam.PTransform):
    """Keep the events in ``time_range`` that no ledger file in ``ledger_files`` has delivered."""

    def __init__(self, time_range: TimeRange, ledger_files: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.time_range = time_range
        self.ledger_files = tuple(ledger_files)

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        return events | "KeepInSliceNotDelivered" >> beam.ParDo(_SelectToSendFn(self.time_range, self.ledger_files))
