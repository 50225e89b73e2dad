"""Parse: ``RawInput`` → timestamped ``Event``s, with malformed input sent to the dead letter."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import TimestampedValue

from transforms.counters import counter
from transforms.dead_letters import DeadLetter
from transforms.events import Event, InvalidInput, NotReplayed, RawInput, Unsupported, parse_input

DEAD_LETTERS = "dead_letters"


def invalid_dead_letter(invalid: InvalidInput) -> DeadLetter:
    """The dead-letter record of an input that could not be parsed or validated."""
    return DeadLetter(reason=invalid.reason, error=invalid.error, event=invalid.event,
                      raw=invalid.raw, attributes=invalid.attributes)


class _ParseFn(beam.DoFn):
    def __init__(self, replay_reasons: frozenset[str] | None = None) -> None:
        self.replay_reasons = replay_reasons
        self.read = counter("read")
        self.invalid = counter("invalid")
        self.unsupported = counter("unsupported")
        self.skipped_replay = counter("skipped_replay")

    def process(self, raw: RawInput) -> Iterator[object]:
        self.read.inc()
        result = parse_input(raw, replay_reasons=self.replay_reasons)
        if isinstance(result, Event):
            yield TimestampedValue(result, result.timestamp_ms / 1000.0)
        elif isinstance(result, Unsupported):
            self.unsupported.inc()
        elif isinstance(result, NotReplayed):
            self.skipped_replay.inc()
        else:
            self.invalid.inc()
            yield pvalue.TaggedOutput(DEAD_LETTERS, invalid_dead_letter(result))


class ParseEvents(beam.PTransform):
    """Parse and validate each input; outputs ``events`` and ``dead_letters``.

    Event time becomes the element timestamp. Calls Woopra has no equivalent for (group,
    alias, screen) are counted ``unsupported`` and go no further. With ``replay_reasons``, a
    dead-letter record of any other reason is counted ``skipped_replay`` and goes no further.
    """

    def __init__(self, replay_reasons: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.replay_reasons = frozenset(replay_reasons) if replay_reasons is not None else None

    def expand(self, raw: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return raw | "Parse" >> beam.ParDo(_ParseFn(self.replay_reasons)).with_outputs(DEAD_LETTERS, main="events")
