"""Identity: carry each visitor's traits, user id and cookie forward, in event-time order.

A stateful DoFn keyed by visitor. Arriving events wait in a bag until the watermark passes the
earliest of them; then the waiting events are applied in event-time order. In batch the
watermark reaches the end of input only after everything is read, so each visitor's whole
history is applied in order and a backfill gives the same answer as the stream. In streaming
the watermark follows the source, so an event is held only until the source says its time has
passed; a call that arrives after its visitor's later events were already released still
updates the remembered traits (newest by event time wins) but cannot change what was sent.

Remembered identity is forgotten after ``ttl_days`` without activity, in two ways:
- between two of a visitor's events more than ``ttl_days`` of event time apart (applied in
  ``release``), so a backfill and a stream of the same events agree;
- in streaming, by an expiry timer ``ttl_days`` after the visitor was last seen (by event time,
  or by the clock when the events are older than that: a stream replaying old events still
  keeps a visitor for ``ttl_days`` after its last activity). It clears the state, so a job that
  runs for months keeps bounded state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.coders import PickleCoder, VarIntCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec,
    ReadModifyWriteStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from transforms.events import Event
from transforms.identity import VisitorIdentity, enrich

MS_PER_DAY = 86_400_000


class _EnrichIdentityFn(beam.DoFn):
    PENDING = BagStateSpec("pending", PickleCoder())
    FLUSH_AT = ReadModifyWriteStateSpec("flush_at_ms", VarIntCoder())
    IDENTITY = ReadModifyWriteStateSpec("identity", PickleCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, ttl_days: float) -> None:
        self.ttl_ms = int(ttl_days * MS_PER_DAY)

    def process(
        self,
        element: tuple[str, Event],
        pending=beam.DoFn.StateParam(PENDING),
        flush_at=beam.DoFn.StateParam(FLUSH_AT),
        flush=beam.DoFn.TimerParam(FLUSH),
    ) -> None:
        _, event = element
        pending.add(event)
        scheduled = flush_at.read()
        if scheduled is None or event.timestamp_ms < scheduled:
            flush_at.write(event.timestamp_ms)
            flush.set(Timestamp(micros=event.timestamp_ms * 1000))

    @on_timer(FLUSH)
    def release(
        self,
        pending=beam.DoFn.StateParam(PENDING),
        flush_at=beam.DoFn.StateParam(FLUSH_AT),
        identity_state=beam.DoFn.StateParam(IDENTITY),
        expire=beam.DoFn.TimerParam(EXPIRE),
    ) -> Iterator[TimestampedValue]:
        events = sorted(pending.read(), key=lambda e: e.timestamp_ms)
        pending.clear()
        flush_at.clear()
        identity = identity_state.read() or VisitorIdentity()
        for event in events:
            if identity.last_seen_ms and event.timestamp_ms - identity.last_seen_ms > self.ttl_ms:
                identity = VisitorIdentity()  # inactive longer than the TTL: a fresh start
            yield TimestampedValue(enrich(event, identity), event.timestamp_ms / 1000.0)
        identity_state.write(identity)
        # Each release moves the expiry: when it fires, the visitor has been idle that long.
        last_active_ms = max(identity.last_seen_ms, int(time.time() * 1000))
        expire.set(Timestamp(micros=(last_active_ms + self.ttl_ms) * 1000))

    @on_timer(EXPIRE)
    def forget(
        self,
        pending=beam.DoFn.StateParam(PENDING),
        identity_state=beam.DoFn.StateParam(IDENTITY),
    ) -> None:
        if any(True for _ in pending.read()):
            return  # events are waiting: their release re-arms the expiry
        identity_state.clear()


class EnrichIdentity(beam.PTransform):
    """Give every event its visitor's remembered traits, ``cv_id`` and cookie (SPEC §3)."""

    def __init__(self, ttl_days: float = 30.0) -> None:
        super().__init__()
        self.ttl_days = ttl_days

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        return (
            events
            | "KeyByVisitor" >> beam.Map(lambda event: (event.visitor, event)).with_output_types(
                beam.typehints.KV[str, Event])
            | "CarryTraitsForward" >> beam.ParDo(_EnrichIdentityFn(self.ttl_days))
        )
