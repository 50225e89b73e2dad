"""Map to Woopra: enriched events → ``WoopraRequest``s (SPEC §4)."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam import pvalue

from transforms.counters import counter
from transforms.dead_letters import DeadLetter
from transforms.events import Event
from transforms.woopra_mapping import Skipped, WoopraSettings, build_request

DEAD_LETTERS = "dead_letters"


class _MapFn(beam.DoFn):
    def __init__(self, settings: WoopraSettings) -> None:
        self.settings = settings
        self.dropped_unmapped = counter("dropped_unmapped")
        self.too_large = counter("too_large")

    def process(self, event: Event) -> Iterator[object]:
        result = build_request(event, self.settings)
        if not isinstance(result, Skipped):
            yield result
        elif result.reason == "too_large":
            self.too_large.inc()
            yield pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
                reason="too_large", error=result.error, event=event.original,
                attributes=event.attributes))
        else:
            self.dropped_unmapped.inc()


class MapToWoopra(beam.PTransform):
    """Build each event's Woopra request; outputs ``requests`` and ``dead_letters`` (too_large)."""

    def __init__(self, settings: WoopraSettings) -> None:
        super().__init__()
        self.settings = settings

    def expand(self, events: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return events | "BuildRequests" >> beam.ParDo(_MapFn(self.settings)).with_outputs(
            DEAD_LETTERS, main="requests")
