"""Parse: ``RawInput`` → timestamped ``Event``s, with malformed input sent to the dead letter."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam.transforms.window import TimestampedValue

from transforms.counters import counter
from transforms.failures import DeadLetterOutput, StepFailures, dead_letter_output
from transforms.rules.dead_letters import DEAD_LETTERS, DeadLetter
from transforms.rules.events import Event, InvalidInput, NotReplayed, RawInput, Unsupported, input_text, parse_input
from transforms.rules.outcomes import READ, Outcome


def invalid_dead_letter(invalid: InvalidInput) -> DeadLetter:
    """The dead-letter record of an input that could not be parsed or validated."""
    return DeadLetter(reason=invalid.reason, error=invalid.error, event=invalid.event,
                      raw=invalid.raw, attributes=invalid.attributes, raw_base64=invalid.raw_base64)


class _ParseFn(beam.DoFn):
    def __init__(self, replay_reasons: frozenset[str] | None = None) -> None:
        self.replay_reasons = replay_reasons
        self.read = counter(READ)
        self.invalid = counter(Outcome.INVALID)
        self.unsupported = counter(Outcome.UNSUPPORTED)
        self.skipped_replay = counter(Outcome.SKIPPED_REPLAY)
        self.failures = StepFailures("Parse")

    def process(self, raw: RawInput) -> Iterator[TimestampedValue | DeadLetterOutput]:
        self.read.inc()
        try:
            result = parse_input(raw, replay_reasons=self.replay_reasons)
            output = TimestampedValue(result, result.timestamp_ms / 1000.0) if isinstance(result, Event) else None
        except Exception as exc:  # noqa: BLE001 - any failure is this input's dead letter
            yield self.failures.dead_letter(exc, raw=input_text(raw), attributes=raw.attributes)
            return
        if output is not None:
            yield output
        elif isinstance(result, Unsupported):
            self.unsupported.inc()
        elif isinstance(result, NotReplayed):
            self.skipped_replay.inc()
        elif isinstance(result, InvalidInput):
            self.invalid.inc()
            yield dead_letter_output(invalid_dead_letter(result))


class ParseEvents(beam.PTransform):
    """Parse and validate each input; outputs ``events`` and ``dead_letters``.

    Event time becomes the element timestamp. Calls Woopra has no equivalent for (group,
    alias, screen) are counted ``unsupported`` and go no further. With ``replay_reasons``, a
    dead-letter record of any other reason is counted ``skipped_replay`` and goes no further.
    """

    def __init__(self, replay_reasons: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.replay_reasons = frozenset(replay_reasons) if replay_reasons is not None else None

    def expand(self, raw: beam.PCollection):  # a DoOutputsTuple, which Beam takes for a wrong type hint
        # Each event leaves with its event time (a TimestampedValue), which Beam's hints cannot say.
        parse = beam.ParDo(_ParseFn(self.replay_reasons)).with_output_types(Event, dead_letters=DeadLetter)
        return raw | "Parse" >> parse.with_outputs(DEAD_LETTERS, main="events")
