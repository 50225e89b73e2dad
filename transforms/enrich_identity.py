"""Identity: give each call what its visitor said about themselves by then, in event time.

Both modes apply the same pure rules (``transforms/rules/identity.py``), and agree
(docs/behaviour.md#identity):

- **Batch** (bounded input): identity reads the input once more, first, and keeps of every call
  the job delivers only what it says about its visitor (an ``IdentityFact``). A combiner folds a
  visitor's facts into one ``IdentityTimeline``; each call then looks its event time up in its
  visitor's timeline (a dict side input), so an identify that appears later in the input still
  enriches the calls after it, and no visitor's events are ever grouped or held. Every worker
  holds the timelines of the visitors who said something (memory per visitor: BENCHMARKS.md,
  benchmark 4). Beam's per-key map side input would not need to fit in memory, but each lookup
  is far slower in Beam 2.77 (it sizes every value it reads).
- **Streaming** (unbounded input): a stateful DoFn. Arriving events wait in a bag until the
  watermark passes the earliest of them; the waiting events are then applied in event-time
  order and what is known about the visitor is kept in state. With Pub/Sub the watermark is
  about "now", so events wait very little. A call that arrives after its visitor's later events
  were released still updates the remembered traits (newest event time wins) but cannot change
  what was already sent.

Remembered identity is forgotten after ``ttl_days`` without activity: between two events more
than that far apart in event time (both modes, so batch and stream agree), and in streaming by
an expiry timer ``ttl_days`` after the visitor was last active (its newest event time, or the
clock when events are older than that), which clears the state so a job that runs for months
keeps bounded state. Calls at the very same millisecond see each other's facts in batch; in
streaming, the one released first does not see the other's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from transforms.failures import StepFailures
from transforms.rules.consent import ConsentPolicy
from transforms.rules.dead_letters import DEAD_LETTERS
from transforms.rules.events import Event, RawInput
from transforms.rules.identity import (
    MS_PER_DAY,
    IdentityFact,
    IdentityTimeline,
    VisitorIdentity,
    delivered_fact,
    enrich_in_order,
    merge_spans,
    with_known_identity,
)

# Merge a visitor's spans once this many calls are pending, so a busy visitor stays small.
SPANS_BEFORE_MERGE = 64

Activity = tuple[list[tuple[int, int]], list[IdentityFact]]  # spans, facts that say something


def _timestamped(events: Iterable[Event]) -> Iterator[TimestampedValue]:
    # Grouping and timers move elements to other timestamps: give each its event time back.
    for event in events:
        yield TimestampedValue(event, event.timestamp_ms / 1000.0)


class _EnrichFromTimelineFn(beam.DoFn):
    """Batch: each call enriched from its visitor's timeline (a map side input)."""

    def setup(self) -> None:
        self.failures = StepFailures("Identity")

    def process(self, event: Event, timelines: Mapping[str, IdentityTimeline]) -> Iterator[object]:
        try:
            timeline = timelines.get(event.visitor)  # none for a visitor who never said anything
            enriched = with_known_identity(event, timeline.at(event.timestamp_ms) if timeline else None)
        except Exception as exc:  # noqa: BLE001 - any failure is this event's dead letter
            yield self.failures.dead_letter(exc, event.original, attributes=event.attributes)
            return
        yield enriched


class _EnrichIdentityStatefulFn(beam.DoFn):
    """Streaming: events wait for the watermark, identity lives in state."""

    PENDING = BagStateSpec("pending", PickleCoder())
    IDENTITY = ReadModifyWriteStateSpec("identity", PickleCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms

    def setup(self) -> None:
        self.failures = StepFailures("Identity")

    def process(
        self,
        element: tuple[str, Event],
        pending=beam.DoFn.StateParam(PENDING),
        flush=beam.DoFn.TimerParam(FLUSH),
    ) -> None:
        _, event = element
        pending.add(event)
        # Release once the watermark passes this event; anything waiting goes with it.
        flush.set(Timestamp(micros=event.timestamp_ms * 1000))

    @on_timer(FLUSH)
    def release(
        self,
        pending=beam.DoFn.StateParam(PENDING),
        identity_state=beam.DoFn.StateParam(IDENTITY),
        expire=beam.DoFn.TimerParam(EXPIRE),
    ) -> Iterator[object]:
        waiting = list(pending.read())
        pending.clear()
        known = identity_state.read() or VisitorIdentity()
        try:
            enriched, identity = enrich_in_order(waiting, known, self.ttl_ms)
        except Exception:  # noqa: BLE001 - find the event that failed; the others go on
            enriched, identity, failed = self._enrich_one_by_one(waiting, known)
            yield from failed
        identity_state.write(identity)
        # Each release moves the expiry: when it fires, the visitor has been idle that long.
        last_active_ms = max(identity.last_seen_ms, int(time.time() * 1000))
        expire.set(Timestamp(micros=(last_active_ms + self.ttl_ms) * 1000))
        yield from _timestamped(enriched)

    def _enrich_one_by_one(
        self, waiting: list[Event], identity: VisitorIdentity
    ) -> tuple[list[Event], VisitorIdentity, list[object]]:
        """``enrich_in_order`` event by event, so one event's failure is its own dead letter."""
        enriched: list[Event] = []
        failed: list[object] = []
        for event in sorted(waiting, key=lambda e: e.timestamp_ms):
            try:
                done, identity = enrich_in_order([event], identity, self.ttl_ms)
            except Exception as exc:  # noqa: BLE001
                failed.append(self.failures.dead_letter(exc, event.original, attributes=event.attributes))
                continue
            enriched.extend(done)
        return enriched, identity, failed

    @on_timer(EXPIRE)
    def forget(
        self,
        pending=beam.DoFn.StateParam(PENDING),
        identity_state=beam.DoFn.StateParam(IDENTITY),
    ) -> None:
        if any(True for _ in pending.read()):
            return  # events are waiting: their release re-arms the expiry
        identity_state.clear()


def _visitor_fact(event: Event) -> tuple[str, IdentityFact]:
    return event.visitor, IdentityFact.of(event)


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


def _known(visitor_timeline: tuple[str, IdentityTimeline | None]) -> Iterator[tuple[str, IdentityTimeline]]:
    if visitor_timeline[1] is not None:
        yield visitor_timeline  # type: ignore[misc]


class _FoldTimelines(beam.PTransform):
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


class _DeliveredFactsFn(beam.DoFn):
    """The first read of a batch job: each input the job delivers, as ``(visitor, IdentityFact)``."""

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


class EnrichIdentity(beam.PTransform):
    """Give every event its visitor's remembered traits, ``cv_id`` and cookie (docs/behaviour.md#identity).

    Outputs ``events`` and ``dead_letters`` (an event the rules could not be applied to). The
    mode follows the input: a bounded one (files) is enriched from identity timelines, an
    unbounded one (Pub/Sub) by the stateful DoFn.

    ``first_read`` (batch) is the job's read transform: identity reads the input once more, first,
    keeping only the facts of calls that ``consent`` and ``replay_reasons`` let through, so the
    events themselves stream through without being held. Without it the timelines are folded
    from the events, which makes the runner keep them until the fold is done (tests, small inputs).
    """

    def __init__(
        self,
        ttl_days: float = 30.0,
        first_read: beam.PTransform | None = None,
        consent: ConsentPolicy | None = None,
        replay_reasons: Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        self.ttl_ms = int(ttl_days * MS_PER_DAY)
        self.first_read = first_read
        self.consent = consent or ConsentPolicy()
        self.replay_reasons = frozenset(replay_reasons) if replay_reasons is not None else None

    def expand(self, events: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        if not events.is_bounded:
            keyed = events | "KeyByVisitor" >> beam.Map(lambda event: (event.visitor, event)).with_output_types(
                beam.typehints.KV[str, Event])
            return keyed | "CarryTraitsForward" >> beam.ParDo(_EnrichIdentityStatefulFn(self.ttl_ms)).with_outputs(
                DEAD_LETTERS, main="events")
        if self.first_read is not None:
            facts = (events.pipeline
                     | "ReadForIdentity" >> self.first_read
                     | "DeliveredFacts" >> beam.ParDo(_DeliveredFactsFn(self.consent, self.replay_reasons)))
        else:
            facts = events | "VisitorFacts" >> beam.Map(_visitor_fact)
        timelines = facts | "Timelines" >> _FoldTimelines(self.ttl_ms)
        return events | "LookUpTimeline" >> beam.ParDo(
            _EnrichFromTimelineFn(), beam.pvalue.AsDict(timelines)).with_outputs(DEAD_LETTERS, main="events")
