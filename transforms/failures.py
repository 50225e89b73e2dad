"""Per-event failures: an exception while processing one event becomes that event's dead letter.

Every step checks what it is given, but a step meeting input nobody foresaw must not fail its
bundle: the runner would retry the bundle, and fail the job, for one event. Each per-event step
catches what it raises, counts the event ``invalid`` and sends it to the dead letter as
``invalid_event`` with the step and the error (docs/behaviour.md, "Dead letters").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from apache_beam import pvalue

from transforms.counters import counter
from transforms.rules.dead_letters import DEAD_LETTERS, DeadLetter, step_failure_error
from transforms.rules.outcomes import DeadLetterReason, Outcome

log = logging.getLogger(__name__)

# What a step emits on its ``dead_letters`` output, as a type Beam reads from a ``process`` annotation
# (``Iterator[Event | DeadLetterOutput]``): the tag and the record type of the tagged output.
DeadLetterOutput = pvalue.TaggedOutput[Literal["dead_letters"], DeadLetter]


def dead_letter_output(record: DeadLetter) -> DeadLetterOutput:
    """``record`` on the step's ``dead_letters`` output."""
    return pvalue.TaggedOutput(DEAD_LETTERS, record)


class StepFailures:
    """Turns one step's per-event exceptions into counted ``invalid_event`` dead letters."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.invalid = counter(Outcome.INVALID)

    def dead_letter(
        self,
        exc: BaseException,
        event: Mapping[str, Any] | None = None,
        raw: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> DeadLetterOutput:
        """Count the event ``invalid`` and return its dead letter as the step's tagged output."""
        self.invalid.inc()
        # The exception's text may quote the event: the log names only the step and the type.
        log.warning("%s failed on one event (%s); it is dead-lettered as invalid_event", self.step,
                    type(exc).__name__)
        return dead_letter_output(DeadLetter(
            reason=DeadLetterReason.INVALID_EVENT, error=step_failure_error(self.step, exc), event=event, raw=raw,
            attributes=attributes))
