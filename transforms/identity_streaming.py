"""Identity in a streaming job: a stateful DoFn per visitor (``EnrichIdentity``'s docstring).

Arriving events wait in a bag until the watermark passes them (or now, for an event from the
future); they are then applied in event-time order (transforms/rules/identity.py), and what is
known about the visitor and the ids released recently are kept in state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from transforms.counters import counter
from transforms.failures import DeadLetterOutput, StepFailures
from transforms.rules.dead_letters import DEAD_LETTERS, DeadLetter
from transforms.rules.event_id import event_id, first_copy
from transforms.rules.events import Event
from transforms.rules.identity import VisitorIdentity, enrich_in_order
from transforms.rules.outcomes import Outcome


def _timestamped(events: Iterable[Event]) -> Iterator[TimestampedValue]:
    # Timers move elements to other timestamps: give each its event time back.
    for event in events:
        yield TimestampedValue(event, event.timestamp_ms / 1000.0)


class _EnrichIdentityStatefulFn(beam.DoFn):
    """Streaming: events wait for the watermark, identity and the recent ids live in state."""

    PENDING = BagStateSpec("pending", PickleCoder())
    IDENTITY = ReadModifyWriteStateSpec("identity", PickleCoder())
    RECENT_IDS = ReadModifyWriteStateSpec("recent_ids", PickleCoder())  # event id → processing time (ms)
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, ttl_ms: int, dedup_window_ms: int) -> None:
        self.ttl_ms = ttl_ms
        self.dedup_window_ms = dedup_window_ms

    def setup(self) -> None:
        self.failures = StepFailures("Identity")
        self.duplicate = counter(Outcome.DUPLICATE)

    def process(
        self,
        element: tuple[str, Event],
        pending=beam.DoFn.StateParam(PENDING),
        flush=beam.DoFn.TimerParam(FLUSH),
    ) -> Iterable[Event]:
        _, event = element
        pending.add(event)
        # Release once the watermark passes this event; anything waiting goes with it. An event
        # time later than now (a wrong clock) counts as now, as the request will say: it must not
        # hold its visitor's other events back until the watermark reaches it.
        flush.set(Timestamp(micros=min(event.timestamp_ms, int(time.time() * 1000)) * 1000))
        return ()  # events leave when released (``release``), not here

    @on_timer(FLUSH)
    def release(
        self,
        pending=beam.DoFn.StateParam(PENDING),
        identity_state=beam.DoFn.StateParam(IDENTITY),
        recent_state=beam.DoFn.StateParam(RECENT_IDS),
        expire=beam.DoFn.TimerParam(EXPIRE),
    ) -> Iterator[TimestampedValue | DeadLetterOutput]:
        waiting = list(pending.read())
        pending.clear()
        if self.dedup_window_ms > 0:
            waiting = self._drop_recent_copies(waiting, recent_state)
        known = identity_state.read() or VisitorIdentity()
        try:
            enriched, identity = enrich_in_order(waiting, known, self.ttl_ms)
        except Exception:  # noqa: BLE001 - find the event that failed; the others go on
            enriched, identity, failed = self._enrich_one_by_one(waiting, known)
            yield from failed
        identity_state.write(identity)
        # Each release moves the expiry: when it fires, the visitor has been idle that long. Events
        # are released no later than the clock (above), so the visitor was last active now.
        expire.set(Timestamp(micros=(int(time.time() * 1000) + self.ttl_ms) * 1000))
        yield from _timestamped(enriched)

    def _drop_recent_copies(self, waiting: list[Event], recent_state: Any) -> list[Event]:
        """The first copy of each id not released within the window; the others counted ``duplicate``."""
        now_ms = int(time.time() * 1000)
        recent = {key: seen_ms for key, seen_ms in (recent_state.read() or {}).items()
                  if now_ms - seen_ms <= self.dedup_window_ms}
        copies: dict[str, list[Event]] = {}
        for event in waiting:
            copies.setdefault(event_id(event.original), []).append(event)
        fresh: list[Event] = []
        for key, events in copies.items():
            if key in recent:
                self.duplicate.inc(len(events))
                continue
            if len(events) > 1:
                self.duplicate.inc(len(events) - 1)
            fresh.append(first_copy(events))
            recent[key] = now_ms
        recent_state.write(recent)
        return fresh

    def _enrich_one_by_one(
        self, waiting: list[Event], identity: VisitorIdentity
    ) -> tuple[list[Event], VisitorIdentity, list[DeadLetterOutput]]:
        """``enrich_in_order`` event by event, so one event's failure is its own dead letter."""
        enriched: list[Event] = []
        failed: list[DeadLetterOutput] = []
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
        recent_state=beam.DoFn.StateParam(RECENT_IDS),
    ) -> None:
        if any(True for _ in pending.read()):
            return  # events are waiting: their release re-arms the expiry
        identity_state.clear()
        recent_state.clear()



def enrich_in_stream(events: beam.PCollection, ttl_ms: int, dedup_window_ms: int) -> Any:
    """The streaming steps of ``EnrichIdentity``: outputs ``events`` and ``dead_letters``."""
    keyed = events | "KeyByVisitor" >> beam.Map(lambda event: (event.visitor, event)).with_output_types(
        beam.typehints.KV[str, Event])
    return keyed | "CarryTraitsForward" >> beam.ParDo(
        _EnrichIdentityStatefulFn(ttl_ms, dedup_window_ms)).with_output_types(
        Event, dead_letters=DeadLetter).with_outputs(DEAD_LETTERS, main="events")
