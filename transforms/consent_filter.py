"""Consent: drop events whose visitor has not granted the integration's consent categories."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam

from transforms.counters import counter
from transforms.failures import DeadLetterOutput, StepFailures
from transforms.rules.consent import ConsentOutcome, ConsentPolicy, decide_consent
from transforms.rules.dead_letters import DEAD_LETTERS
from transforms.rules.events import Event


class _ConsentFn(beam.DoFn):
    def __init__(self, policy: ConsentPolicy) -> None:
        self.policy = policy
        self.filtered = {o: counter(o.value) for o in (ConsentOutcome.DENIED, ConsentOutcome.MISSING)}
        self.failures = StepFailures("Consent")

    def process(self, event: Event) -> Iterator[Event | DeadLetterOutput]:
        try:
            decision = decide_consent(event.original, self.policy)
        except Exception as exc:  # noqa: BLE001 - any failure is this event's dead letter
            yield self.failures.dead_letter(exc, event.original, attributes=event.attributes)
            return
        if decision.outcome.allowed:
            yield event
        else:
            self.filtered[decision.outcome].inc()


class ConsentFilter(beam.PTransform):
    """Keep events the policy allows; count the others ``consent_denied``/``consent_missing``.

    Outputs ``events`` and ``dead_letters`` (an event the rules could not be applied to).
    """

    def __init__(self, policy: ConsentPolicy) -> None:
        super().__init__()
        self.policy = policy

    def expand(self, events: beam.PCollection):  # a DoOutputsTuple, which Beam takes for a wrong type hint
        return events | "ApplyConsent" >> beam.ParDo(_ConsentFn(self.policy)).with_outputs(
            DEAD_LETTERS, main="events")
