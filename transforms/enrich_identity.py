"""Identity: one copy of each event, given what its visitor said about themselves by then, in event time.

Both modes apply the same pure rules (``transforms/rules/identity.py``, ``rules/event_id.py``),
and agree (docs/behaviour.md#identity, docs/backfill.md#each-event-once):

- **Batch** (bounded input): identity reads the input once more, first (the *survey*), and keeps of
  every call the job delivers only its id and what it says about its visitor (an ``IdentityFact``).
  A combiner folds each visitor's calls into a ``VisitorSurvey``: copies of one id count once, with
  the fact of the copy that is sent (``first_copy``); for the ids the visitor sent more than once,
  where that copy was read becomes a small side input, and the second read sends the copy read
  there and counts the others ``duplicate``, without grouping or holding any event. The survey's
  ``IdentityTimeline`` (only for visitors with more than one call who said something: a lone call
  already carries all it says) lets each call look its event time up, so an identify that appears
  later in the input still enriches the calls after it. The lookup is either a dict side input
  that every worker process holds whole (``side_input``, fastest on one machine), or a join through
  the shuffle by visitor (``shuffle``: memory per process does not grow with the number of
  visitors; the runner spills to disk).
- **Streaming** (unbounded input): a stateful DoFn. Arriving events wait in a bag until the
  watermark passes the latest arrival's event time, or now where that is earlier (an event from
  the future holds nothing back); the waiting events are then applied in event-time order and
  what is known about the visitor is kept in state. Copies of an id released within
  ``dedup_window_seconds`` (processing time) of each other are counted ``duplicate``; the ids are
  kept per visitor for that long. With Pub/Sub the watermark is about "now", so events wait very
  little. A call that arrives after its visitor's later events were released still updates the
  remembered traits (newest event time wins) but cannot change what was already sent.

Remembered identity is forgotten after ``ttl_days`` without activity: between two events more
than that far apart in event time (both modes, so batch and stream agree), and in streaming by
an expiry timer ``ttl_days`` after the visitor was last active (the clock at their last release),
which clears the state so a job that runs for months
keeps bounded state. Calls at the very same millisecond see each other's facts in batch; in
streaming, the one released first does not see the other's.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from transforms.counters import counter
from transforms.failures import DeadLetterOutput, StepFailures
from transforms.rules.consent import ConsentPolicy
from transforms.rules.dead_letters import DEAD_LETTERS, DeadLetter
from transforms.rules.event_id import canonical_json, event_id, fact_rank, first_copy, id_digest, position_rank
from transforms.rules.events import Event, RawInput
from transforms.rules.identity import (
    MS_PER_DAY,
    IdentityFact,
    IdentityTimeline,
    VisitorIdentity,
    delivered_event,
    enrich_in_order,
    merge_spans,
    with_known_identity,
)
from transforms.rules.outcomes import Outcome

JOINS = ("side_input", "shuffle")

# What the survey keeps of one call: its id (``id_digest``), its fact, where it was read (``position_rank``).
SurveyRecord = tuple[bytes, IdentityFact, int]
# One call in ``VisitorCalls.calls``: id digest, position rank, event time (ms), fact number (-1: none).
_CALL = struct.Struct("<16sqqi")
_SAYS_NOTHING = -1


@dataclass(slots=True)
class VisitorCalls:
    """One visitor's calls as the survey keeps them: 36 bytes each, and each different thing they
    say about the visitor once (most calls of a visitor repeat the same cookie and user id).

    Copies of an id are kept as they come; which one is sent is decided at the end (``sent_copies``).
    """

    calls: bytearray = field(default_factory=bytearray)
    facts: list[IdentityFact] = field(default_factory=list)  # at_ms 0: the time is the call's
    fact_numbers: dict[tuple[str | None, str | None, str], int] | None = None  # rebuilt after ``drop_index``

    def add(self, key: bytes, position: int, at_ms: int, fact: IdentityFact | None) -> None:
        number = self._number(fact) if fact is not None and fact.says_something else _SAYS_NOTHING
        self.calls += _CALL.pack(key, position, at_ms, number)

    def add_all(self, other: VisitorCalls) -> None:
        for key, position, at_ms, number in _CALL.iter_unpack(other.calls):
            self.add(key, position, at_ms, other.facts[number] if number != _SAYS_NOTHING else None)

    def drop_index(self) -> None:
        """Forget the lookup of facts (it is rebuilt when needed): less to carry between steps."""
        self.fact_numbers = None

    def _number(self, fact: IdentityFact) -> int:
        if self.fact_numbers is None:
            self.fact_numbers = {}
            for number, known in enumerate(self.facts):
                self.fact_numbers.setdefault(_fact_key(known), number)
        key = _fact_key(fact)
        known_number = self.fact_numbers.get(key)
        if known_number is not None and self.facts[known_number].traits == fact.traits:
            return known_number
        # New, or the same JSON text for different values (a date and its text): kept apart.
        self.facts.append(fact._replace(at_ms=0))
        self.fact_numbers.setdefault(key, len(self.facts) - 1)
        return len(self.facts) - 1

    def sent_copies(self) -> tuple[dict[bytes, tuple[int, IdentityFact]], dict[bytes, int]]:
        """Per id, the copy that is sent (``first_copy``: its position and its fact, at its time),
        and per id read more than once, how many copies."""
        sent: dict[bytes, tuple[int, IdentityFact]] = {}
        copies: dict[bytes, int] = {}
        for key, position, at_ms, number in _CALL.iter_unpack(self.calls):
            fact = self.facts[number]._replace(at_ms=at_ms) if number != _SAYS_NOTHING else IdentityFact(at_ms)
            known = sent.get(key)
            if known is None:
                sent[key] = (position, fact)
                continue
            copies[key] = copies.get(key, 1) + 1
            if _is_first(fact, position, known[1], known[0]):
                sent[key] = (position, fact)
        return sent, copies


def _fact_key(fact: IdentityFact) -> tuple[str | None, str | None, str]:
    return fact.user_id, fact.cookie, canonical_json(fact.traits) if fact.traits else ""


class VisitorSurvey(NamedTuple):
    """What the survey learnt of one visitor: their timeline (None when no call needs one), and
    for each id they sent more than once, where the copy that is sent was read."""

    timeline: IdentityTimeline | None
    first_copies: tuple[tuple[bytes, int], ...]


def _timestamped(events: Iterable[Event]) -> Iterator[TimestampedValue]:
    # Grouping and timers move elements to other timestamps: give each its event time back.
    for event in events:
        yield TimestampedValue(event, event.timestamp_ms / 1000.0)


# ----- batch: the survey ----------------------------------------------------------------------------

def _survey_record(event: Event) -> tuple[str, SurveyRecord]:
    return event.visitor, (id_digest(event_id(event.original)), IdentityFact.of(event), position_rank(event.source))


class _SurveyFn(beam.DoFn):
    """The first read of a batch job: each input the job delivers, as ``(visitor, SurveyRecord)``."""

    def __init__(self, consent: ConsentPolicy, replay_reasons: frozenset[str] | None) -> None:
        self.consent = consent
        self.replay_reasons = replay_reasons

    def process(self, raw: RawInput) -> Iterator[tuple[str, SurveyRecord]]:
        try:
            event = delivered_event(raw, self.consent, self.replay_reasons)
            if event is not None:
                yield _survey_record(event)
        except Exception:  # noqa: BLE001 - the delivering read dead-letters this input
            return


def _is_first(fact: IdentityFact, position: int, than: IdentityFact, than_position: int) -> bool:
    # Within one visitor, the order of ``first_copy``: what the call says, then where it was read.
    return (fact_rank(fact), position) < (fact_rank(than), than_position)


class _VisitorSurveyFn(beam.CombineFn):
    """One visitor's calls (``SurveyRecord``s) → their ``VisitorSurvey``.

    Copies of an id count once, with the fact of the copy the job sends (``first_copy``), so the
    timeline is what the visitor said in the calls that are sent.
    """

    def __init__(self, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms

    def create_accumulator(self) -> VisitorCalls:
        return VisitorCalls()

    def add_input(self, calls: VisitorCalls, record: SurveyRecord) -> VisitorCalls:
        key, fact, position = record
        calls.add(key, position, fact.at_ms, fact)
        return calls

    def merge_accumulators(self, accumulators: Iterable[VisitorCalls]) -> VisitorCalls:
        merged: VisitorCalls | None = None
        for calls in accumulators:
            if merged is None:
                merged = calls
            else:
                merged.add_all(calls)
        return merged if merged is not None else self.create_accumulator()

    def compact(self, calls: VisitorCalls) -> VisitorCalls:
        calls.drop_index()
        return calls

    def extract_output(self, calls: VisitorCalls) -> VisitorSurvey:
        sent, copies = calls.sent_copies()
        first_copies = tuple((key, sent[key][0]) for key in copies)
        facts = [fact for _, fact in sent.values() if fact.says_something]
        # A lone call already carries everything it says: its visitor needs no timeline.
        if not facts or len(sent) < 2:
            return VisitorSurvey(None, first_copies)
        spans = merge_spans(((fact.at_ms, fact.at_ms) for _, fact in sent.values()), self.ttl_ms)
        return VisitorSurvey(IdentityTimeline.build(spans, facts), first_copies)


def _timeline(survey: tuple[str, VisitorSurvey]) -> Iterator[tuple[str, IdentityTimeline]]:
    visitor, found = survey
    if found.timeline is not None:
        yield visitor, found.timeline


def _worth_a_lookup(survey: tuple[str, VisitorSurvey]) -> Iterator[tuple[str, VisitorSurvey]]:
    visitor, found = survey
    if found.timeline is not None or found.first_copies:
        yield survey


def _first_copies(survey: tuple[str, VisitorSurvey]) -> Iterator[tuple[tuple[str, bytes], int]]:
    visitor, found = survey
    for key, position in found.first_copies:
        yield (visitor, key), position


# ----- batch: each id once --------------------------------------------------------------------------

def _is_later_copy(event: Event, first_position: int | None) -> bool:
    """Whether ``event`` is a copy read elsewhere than ``first_position``, where the survey found the
    copy of its id that is sent (None: its id was read once)."""
    return first_position is not None and first_position != position_rank(event.source)


class _DropLaterCopiesFn(beam.DoFn):
    """Batch, ``shuffle``: each id of a visitor once; a copy read elsewhere than the survey's first
    copy is ``duplicate``.

    Both reads of the input see each call at the same position, so no call is grouped or held.
    """

    def __init__(self) -> None:
        self.duplicate = counter(Outcome.DUPLICATE)

    def process(self, event: Event, first_copies: Mapping[tuple[str, bytes], int]) -> Iterator[Event]:
        if first_copies and _is_later_copy(
                event, first_copies.get((event.visitor, id_digest(event_id(event.original))))):
            self.duplicate.inc()
            return
        yield event


# ----- batch: calls meet their visitor's timeline ---------------------------------------------------

class _EnrichFromSurveyFn(beam.DoFn):
    """Batch, ``side_input``: each call looked up in a dict side input of the visitors the survey
    found something for: a later copy is ``duplicate``, the others are enriched from the timeline.

    One lookup for both (not a step each): this runs for every event of a backfill.
    """

    def setup(self) -> None:
        self.failures = StepFailures("Identity")
        self.duplicate = counter(Outcome.DUPLICATE)

    def process(self, event: Event, surveys: Mapping[str, VisitorSurvey]) -> Iterator[Event | DeadLetterOutput]:
        found = surveys.get(event.visitor)  # none for a visitor who needs nothing
        try:
            if found is not None and found.first_copies and _is_later_copy(
                    event, dict(found.first_copies).get(id_digest(event_id(event.original)))):
                self.duplicate.inc()
                return
            timeline = found.timeline if found is not None else None
            enriched = with_known_identity(event, timeline.at(event.timestamp_ms) if timeline else None)
        except Exception as exc:  # noqa: BLE001 - any failure is this event's dead letter
            yield self.failures.dead_letter(exc, event.original, attributes=event.attributes)
            return
        yield enriched


class _EnrichVisitorFn(beam.DoFn):
    """Batch, ``shuffle``: one visitor's calls, grouped with their timeline (if any), enriched."""

    def setup(self) -> None:
        self.failures = StepFailures("Identity")

    def process(self, joined: tuple[str, dict[str, Iterable[Any]]]) -> Iterator[TimestampedValue | DeadLetterOutput]:
        timelines = list(joined[1]["timeline"])
        timeline: IdentityTimeline | None = timelines[0] if timelines else None
        for event in joined[1]["events"]:
            try:
                enriched = with_known_identity(event, timeline.at(event.timestamp_ms) if timeline else None)
            except Exception as exc:  # noqa: BLE001 - any failure is this event's dead letter
                yield self.failures.dead_letter(exc, event.original, attributes=event.attributes)
                continue
            yield TimestampedValue(enriched, enriched.timestamp_ms / 1000.0)


def _by_visitor(event: Event) -> tuple[str, Event]:
    return event.visitor, event


# ----- streaming ------------------------------------------------------------------------------------

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


# ----- the step -------------------------------------------------------------------------------------

class EnrichIdentity(beam.PTransform):
    """One copy of each event, with its visitor's remembered traits, ``cv_id`` and cookie.

    docs/behaviour.md#identity, docs/backfill.md#each-event-once. Outputs ``events`` and
    ``dead_letters`` (an event the rules could not be applied to). The mode follows the input: a
    bounded one (files) is enriched from identity timelines, an unbounded one (Pub/Sub) by the
    stateful DoFn.

    ``first_read`` (batch) is the job's read transform: identity reads the input once more, first,
    keeping only the ids and facts of calls that ``consent`` and ``replay_reasons`` let through, so
    the events themselves stream through without being held. Without it the survey is made of the
    events, which makes the runner keep them until it is done (tests, small inputs). ``join``
    (batch) is ``side_input`` or ``shuffle``.
    """

    def __init__(
        self,
        ttl_days: float = 30.0,
        first_read: beam.PTransform | None = None,
        consent: ConsentPolicy | None = None,
        replay_reasons: Iterable[str] | None = None,
        join: str = "side_input",
        dedup_window_seconds: float = 600.0,
    ) -> None:
        super().__init__()
        if join not in JOINS:
            raise ValueError(f"join must be one of {JOINS}, got {join!r}")
        self.ttl_ms = int(ttl_days * MS_PER_DAY)
        self.first_read = first_read
        self.consent = consent or ConsentPolicy()
        self.replay_reasons = frozenset(replay_reasons) if replay_reasons is not None else None
        self.join = join
        self.dedup_window_ms = int(dedup_window_seconds * 1000)

    def expand(self, events: beam.PCollection):  # a DoOutputsTuple, which Beam takes for a wrong type hint
        if not events.is_bounded:
            keyed = events | "KeyByVisitor" >> beam.Map(lambda event: (event.visitor, event)).with_output_types(
                beam.typehints.KV[str, Event])
            return keyed | "CarryTraitsForward" >> beam.ParDo(
                _EnrichIdentityStatefulFn(self.ttl_ms, self.dedup_window_ms)).with_output_types(
                Event, dead_letters=DeadLetter).with_outputs(DEAD_LETTERS, main="events")
        if self.first_read is not None:
            calls = (events.pipeline
                     | "ReadForIdentity" >> self.first_read
                     | "Survey" >> beam.ParDo(_SurveyFn(self.consent, self.replay_reasons)))
        else:
            calls = events | "SurveyEvents" >> beam.Map(_survey_record)
        survey = calls | "SurveyPerVisitor" >> beam.CombinePerKey(_VisitorSurveyFn(self.ttl_ms))
        if self.join == "side_input":
            surveys = survey | "WorthALookup" >> beam.FlatMap(_worth_a_lookup)
            return events | "LookUpSurvey" >> beam.ParDo(
                _EnrichFromSurveyFn(), beam.pvalue.AsDict(surveys)).with_outputs(DEAD_LETTERS, main="events")
        timelines = survey | "Timelines" >> beam.FlatMap(_timeline)
        first_copies = survey | "FirstCopies" >> beam.FlatMap(_first_copies)
        unique = events | "DropLaterCopies" >> beam.ParDo(_DropLaterCopiesFn(), beam.pvalue.AsDict(first_copies))
        calls = unique | "KeyCallsByVisitor" >> beam.Map(_by_visitor)
        return ({"events": calls, "timeline": timelines}
                | "JoinByVisitor" >> beam.CoGroupByKey()
                | "EnrichVisitor" >> beam.ParDo(_EnrichVisitorFn()).with_output_types(
                    Event, dead_letters=DeadLetter).with_outputs(DEAD_LETTERS, main="events"))
