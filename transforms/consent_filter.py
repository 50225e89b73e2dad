"""Consent: drop events whose visitor has not granted the integration's consent categories."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam

from transforms.consent import ConsentOutcome, ConsentPolicy, decide_consent
from transforms.counters import counter
from transforms.events import Event


class _ConsentFn(beam.DoFn):
    def __init__(self, policy: ConsentPolicy) -> None:
        self.policy = policy
        self.filtered = {o: counter(o.value) for o in (ConsentOutcome.DENIED, ConsentOutcome.MISSING)}

    def process(self, event: Event) -> Iterator[Event]:
        decision = decide_consent(event.original, self.policy)
        if decision.outcome.allowed:
            yield event
        else:
            self.filtered[decision.outcome].inc()


class ConsentFilter(beam.PTransform):
    """Keep events the policy allows; count the others ``consent_denied``/``consent_missing``."""

    def __init__(self, policy: ConsentPolicy) -> None:
        super().__init__()
        self.policy = policy

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        return events | "ApplyConsent" >> beam.ParDo(_ConsentFn(self.policy))
