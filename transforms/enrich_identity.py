"""Identity: give each call what its visitor said about themselves by then, in event time.

Both modes apply the same pure rules (``transforms.identity``), and agree:

- **Batch** (a side input of ``IdentityTimeline``s): each call looks its event time up in its
  visitor's timeline, so an identify that appears later in the input still enriches the calls
  that happened after it, and a backfill gives the same answer as the stream. The timelines come
  from a first pass over the input (``IdentityTimelines``), so no visitor's events are ever
  grouped: a grouped history held about 3 KB of memory per event on the local runner. The
  timelines are a dict side input, held by every worker: about 1.5 KB per visitor who said
  something (270 bytes encoded), so ~5 million such visitors per 8 GB of worker memory. (Beam's
  per-key map side input would not need to fit, but Beam 2.77 sizes each looked-up value with
  objsize, ~5 ms a lookup: a 100k dry run took 72 s instead of 24 s.)
- **Streaming**: a stateful DoFn. Arriving events wait in a bag until the watermark passes the
  earliest of them; the waiting events are then applied in event-time order and what is known
  about the visitor is kept in state. With Pub/Sub the watermark is about "now", so events wait
  very little. A call that arrives after its visitor's later events were released still updates
  the remembered traits (newest event time wins) but cannot change what was already sent.

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

from transforms.dead_letters import DEAD_LETTERS
from transforms.events import Event
from transforms.failures import StepFailures
from transforms.identity import IdentityFact, IdentityTimeline, VisitorIdentity, enrich_in_order, with_known_identity
from transforms.identity_timelines import MS_PER_DAY, FoldTimelines


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

    def __init__(self, ttl_days: float) -> None:
        self.ttl_ms = int(ttl_days * MS_PER_DAY)

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


class EnrichIdentity(beam.PTransform):
    """Give every event its visitor's remembered traits, ``cv_id`` and cookie (SPEC §3).

    Outputs ``events`` and ``dead_letters`` (an event the rules could not be applied to).

    Batch jobs pass ``timelines`` from ``IdentityTimelines`` over a second read of the input;
    without them they are folded from ``events`` themselves, which makes the runner keep
    ``events`` until the fold is done (fine for tests and small inputs).
    """

    def __init__(
        self, ttl_days: float = 30.0, streaming: bool = False, timelines: beam.PCollection | None = None
    ) -> None:
        super().__init__()
        self.ttl_days = ttl_days
        self.streaming = streaming
        self.timelines = timelines

    def expand(self, events: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        if self.streaming:
            keyed = events | "KeyByVisitor" >> beam.Map(lambda event: (event.visitor, event)).with_output_types(
                beam.typehints.KV[str, Event])
            return keyed | "CarryTraitsForward" >> beam.ParDo(_EnrichIdentityStatefulFn(self.ttl_days)).with_outputs(
                DEAD_LETTERS, main="events")
        timelines = self.timelines
        if timelines is None:
            timelines = (events | "VisitorFacts" >> beam.Map(_visitor_fact)
                         | "Timelines" >> FoldTimelines(int(self.ttl_days * MS_PER_DAY)))
        return events | "LookUpTimeline" >> beam.ParDo(
            _EnrichFromTimelineFn(), beam.pvalue.AsDict(timelines)).with_outputs(DEAD_LETTERS, main="events")
