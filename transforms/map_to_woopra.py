"""Map to Woopra: enriched events → ``WoopraRequest``s (docs/behaviour.md#woopra-mapping)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from transforms.counters import counter
from transforms.failures import DeadLetterOutput, StepFailures, dead_letter_output
from transforms.rules.dead_letters import DEAD_LETTERS, DeadLetter
from transforms.rules.events import Event
from transforms.rules.outcomes import DeadLetterReason, Outcome
from transforms.rules.woopra_mapping import Skipped, WoopraRequest, WoopraSettings, build_request


class _MapFn(beam.DoFn):
    def __init__(self, settings: WoopraSettings) -> None:
        self.settings = settings
        self.dropped_unmapped = counter(Outcome.DROPPED_UNMAPPED)
        self.too_large = counter(Outcome.TOO_LARGE)
        self.failures = StepFailures("MapToWoopra")

    def process(self, event: Event) -> Iterator[WoopraRequest | DeadLetterOutput]:
        try:
            result = build_request(event, self.settings)
        except Exception as exc:  # noqa: BLE001 - any failure is this event's dead letter
            yield self.failures.dead_letter(exc, event.original, attributes=event.attributes)
            return
        if isinstance(result, Skipped):
            yield from skipped(result, event, self.too_large, self.dropped_unmapped)
        else:
            yield result


def skipped(result: Skipped, event: Event, too_large: Any, dropped_unmapped: Any) -> Iterator[DeadLetterOutput]:
    """An event the mapping does not send: ``too_large`` is a dead letter, ``dropped_unmapped`` a count."""
    if result.reason is Outcome.TOO_LARGE:
        too_large.inc()
        yield dead_letter_output(DeadLetter(
            reason=DeadLetterReason.TOO_LARGE, error=result.error, event=event.original, attributes=event.attributes))
    else:
        dropped_unmapped.inc()


class MapToWoopra(beam.PTransform):
    """Build each event's Woopra request; outputs ``requests`` and ``dead_letters`` (too_large)."""

    def __init__(self, settings: WoopraSettings) -> None:
        super().__init__()
        self.settings = settings

    def expand(self, events: beam.PCollection):  # a DoOutputsTuple, which Beam takes for a wrong type hint
        return events | "BuildRequests" >> beam.ParDo(_MapFn(self.settings)).with_outputs(
            DEAD_LETTERS, main="requests")
