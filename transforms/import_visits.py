"""Group into visits: enriched events → import bodies (``--sink import``, docs/backfill.md#the-import-sink).

Each event is mapped as the tracking path maps it, then keyed by its visitor; a ``GroupByKey``
brings a visitor's calls together, and the visitor's calls in time order are cut into visits
after ``timeout_ms`` idle (what ``Sessions(timeout)`` windows would give, done in plain Python:
transforms/rules/import_visits.py, tested on its own). Visit lines are packed into bodies a
bundle at a time, so a worker holds one visitor's calls and one body at once, not the data set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from transforms.counters import counter
from transforms.failures import DeadLetterOutput, StepFailures
from transforms.map_to_woopra import skipped
from transforms.rules.dead_letters import DEAD_LETTERS
from transforms.rules.events import Event
from transforms.rules.import_visits import (
    BodyPacker,
    ImportBody,
    ImportCall,
    VisitLine,
    import_call,
    split_visits,
)
from transforms.rules.outcomes import Outcome
from transforms.rules.woopra_mapping import Skipped, WoopraSettings


class _MapToImportCallFn(beam.DoFn):
    def __init__(self, settings: WoopraSettings) -> None:
        self.settings = settings
        self.dropped_unmapped = counter(Outcome.DROPPED_UNMAPPED)
        self.too_large = counter(Outcome.TOO_LARGE)
        self.failures = StepFailures("GroupIntoVisits")

    def process(self, event: Event) -> Iterator[tuple[str, bytes] | DeadLetterOutput]:
        try:
            result = import_call(event, self.settings)
        except Exception as exc:  # noqa: BLE001 - any failure is this event's dead letter
            yield self.failures.dead_letter(exc, event.original, attributes=event.attributes)
            return
        if isinstance(result, Skipped):
            yield from skipped(result, event, self.too_large, self.dropped_unmapped)
        else:
            yield event.visitor, result.to_bytes()


class _SplitVisitsFn(beam.DoFn):
    def __init__(self, timeout_ms: int, max_bytes: int) -> None:
        self.timeout_ms = timeout_ms
        self.max_bytes = max_bytes

    def process(self, visitor_calls: tuple[str, Iterable[bytes]]) -> Iterator[VisitLine]:
        yield from split_visits(map(ImportCall.from_bytes, visitor_calls[1]), self.timeout_ms, self.max_bytes)


class _PackBodiesFn(beam.DoFn):
    """Packs a bundle's visit lines into bodies; the last, partly filled body closes with the bundle."""

    def __init__(self, max_bytes: int, max_visits: int) -> None:
        self.max_bytes = max_bytes
        self.max_visits = max_visits

    def start_bundle(self) -> None:
        self.packer = BodyPacker(self.max_bytes, self.max_visits)

    def process(self, visit: VisitLine) -> Iterator[ImportBody]:
        body = self.packer.add(visit)
        if body is not None:
            yield body

    def finish_bundle(self) -> Iterator[WindowedValue]:
        body = self.packer.flush()
        if body is not None:
            yield WindowedValue(body, Timestamp.of(0), (GlobalWindow(),))


class GroupIntoVisits(beam.PTransform):
    """Events → import bodies: outputs ``bodies`` (``ImportBody``) and ``dead_letters``."""

    def __init__(self, settings: WoopraSettings, max_bytes: int, max_visits: int) -> None:
        super().__init__()
        self.settings = settings
        self.max_bytes = max_bytes
        self.max_visits = max_visits

    def expand(self, events: beam.PCollection):  # a dict of PCollections; Beam takes no hint for it
        calls = events | "MapToImportCalls" >> beam.ParDo(_MapToImportCallFn(self.settings)).with_outputs(
            DEAD_LETTERS, main="calls")
        bodies = (
            calls.calls
            | "GroupByVisitor" >> beam.GroupByKey()
            | "SplitVisits" >> beam.ParDo(_SplitVisitsFn(self.settings.timeout_ms, self.max_bytes))
            | "PackBodies" >> beam.ParDo(_PackBodiesFn(self.max_bytes, self.max_visits)).with_output_types(
                ImportBody)
        )
        return {"bodies": bodies, "dead_letters": calls[DEAD_LETTERS]}
