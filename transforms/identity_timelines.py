"""Identity timelines (batch, first pass): each visitor's known identity over event time.

A batch job reads its input twice. This first pass keeps, of every call that the second pass
will deliver (parsed, not skipped, consent granted), only what it says about its visitor: an
``IdentityFact`` of a few bytes. A combiner folds a visitor's facts into activity spans and
facts as they arrive, so neither a visitor's events nor the whole input are ever held at once;
the result is one ``IdentityTimeline`` per visitor that said anything about themselves
(traits, a user id or a cookie). Visitors that said nothing have no timeline: nothing is known.

The second pass (``EnrichIdentity`` with these timelines as a side input) then enriches each call
as it streams past, by looking its event time up in its visitor's timeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam

from transforms.consent import ConsentPolicy, decide_consent
from transforms.events import Event, RawInput, parse_input
from transforms.identity import IdentityFact, IdentityTimeline, merge_spans

MS_PER_DAY = 86_400_000
# Merge a visitor's spans once this many calls are pending, so a busy visitor stays small.
SPANS_BEFORE_MERGE = 64

Activity = tuple[list[tuple[int, int]], list[IdentityFact]]  # spans, facts that say something


def delivered_fact(
    raw: RawInput, consent: ConsentPolicy, replay_reasons: frozenset[str] | None
) -> tuple[str, IdentityFact] | None:
    """``(visitor, fact)`` for an input the job will deliver, else None (same rules as the job)."""
    event = parse_input(raw, replay_reasons=replay_reasons)
    if not isinstance(event, Event) or not decide_consent(event.original, consent).outcome.allowed:
        return None
    fact = IdentityFact.of(event)
    return event.visitor, fact if fact.says_something else IdentityFact(fact.at_ms)


class _VisitorTimelineFn(beam.CombineFn):
    """Facts of one visitor → their ``IdentityTimeline`` (None when none says anything)."""

    def __init__(self, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms

    def create_accumulator(self) -> Activity:
        return [], []

    def add_input(self, activity: Activity, fact: IdentityFact) -> Activity:
        spans, facts = activity
        spans.append((fact.at_ms, fact.at_ms))
        if fact.says_something:
            facts.append(fact)
        if len(spans) >= SPANS_BEFORE_MERGE:
            spans[:] = merge_spans(spans, self.ttl_ms)
        return activity

    def merge_accumulators(self, activities: Iterable[Activity]) -> Activity:
        spans: list[tuple[int, int]] = []
        facts: list[IdentityFact] = []
        for more_spans, more_facts in activities:
            spans.extend(more_spans)
            facts.extend(more_facts)
        return merge_spans(spans, self.ttl_ms), facts

    def compact(self, activity: Activity) -> Activity:
        return merge_spans(activity[0], self.ttl_ms), activity[1]

    def extract_output(self, activity: Activity) -> IdentityTimeline | None:
        spans, facts = activity
        return IdentityTimeline.build(merge_spans(spans, self.ttl_ms), facts) if facts else None


class _DeliveredFactsFn(beam.DoFn):
    def __init__(self, consent: ConsentPolicy, replay_reasons: frozenset[str] | None) -> None:
        self.consent = consent
        self.replay_reasons = replay_reasons

    def process(self, raw: RawInput) -> Iterator[tuple[str, IdentityFact]]:
        try:
            keyed = delivered_fact(raw, self.consent, self.replay_reasons)
        except Exception:  # noqa: BLE001 - the delivering read dead-letters this input
            return
        if keyed is not None:
            yield keyed


def _known(visitor_timeline: tuple[str, IdentityTimeline | None]) -> Iterator[tuple[str, IdentityTimeline]]:
    if visitor_timeline[1] is not None:
        yield visitor_timeline  # type: ignore[misc]


class FoldTimelines(beam.PTransform):
    """``(visitor, IdentityFact)`` pairs → ``(visitor, IdentityTimeline)`` for visitors known by something."""

    def __init__(self, ttl_ms: int) -> None:
        super().__init__()
        self.ttl_ms = ttl_ms

    def expand(self, facts: beam.PCollection) -> beam.PCollection:
        return (
            facts
            | "FoldPerVisitor" >> beam.CombinePerKey(_VisitorTimelineFn(self.ttl_ms))
            | "KeepKnownVisitors" >> beam.FlatMap(_known)
        )


class IdentityTimelines(beam.PTransform):
    """``RawInput`` records → ``(visitor, IdentityTimeline)`` for visitors known by something.

    ``consent`` and ``replay_reasons`` must be the job's: a fact counts only from a call the job
    delivers. Counts nothing: the second pass over the same input does the counting.
    """

    def __init__(self, ttl_days: float, consent: ConsentPolicy, replay_reasons: Iterable[str] | None = None) -> None:
        super().__init__()
        self.ttl_ms = int(ttl_days * MS_PER_DAY)
        self.consent = consent
        self.replay_reasons = frozenset(replay_reasons) if replay_reasons is not None else None

    def expand(self, raw: beam.PCollection) -> beam.PCollection:
        return (
            raw
            | "DeliveredFacts" >> beam.ParDo(_DeliveredFactsFn(self.consent, self.replay_reasons))
            | "Fold" >> FoldTimelines(self.ttl_ms)
        )
