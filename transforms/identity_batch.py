"""Identity in a batch job: the identity pass, then each call enriched from its visitor's summary.

The identity pass reads the input once more, first, and keeps of every call the job delivers only
a ``CallRecord`` (transforms/rules/visitor_calls.py); a combiner folds each visitor's records into a
``VisitorSummary``. The second read then looks each call up: later copies of an id are counted
``duplicate`` and the others are enriched from the visitor's timeline, either through a dict side
input (``side_input``) or a join by visitor through the shuffle (``shuffle``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import TimestampedValue

from transforms.counters import counter
from transforms.failures import DeadLetterOutput, StepFailures
from transforms.rules.consent import ConsentPolicy
from transforms.rules.dead_letters import DEAD_LETTERS, DeadLetter
from transforms.rules.event_id import event_id, id_digest, position_rank
from transforms.rules.events import Event, RawInput
from transforms.rules.identity import IdentityFact, IdentityTimeline, delivered_event, with_known_identity
from transforms.rules.outcomes import Outcome
from transforms.rules.visitor_calls import CallRecord, VisitorCalls, VisitorSummary, summarize

JOINS = ("side_input", "shuffle")


# ----- the identity pass ----------------------------------------------------------------------------

def call_record(event: Event) -> tuple[str, CallRecord]:
    return event.visitor, (id_digest(event_id(event.original)), IdentityFact.of(event), position_rank(event.source))


class _RecordDeliveredCallsFn(beam.DoFn):
    """The first read of a batch job: each input the job delivers, as ``(visitor, CallRecord)``."""

    def __init__(self, consent: ConsentPolicy, replay_reasons: frozenset[str] | None) -> None:
        self.consent = consent
        self.replay_reasons = replay_reasons

    def process(self, raw: RawInput) -> Iterator[tuple[str, CallRecord]]:
        try:
            event = delivered_event(raw, self.consent, self.replay_reasons)
            if event is not None:
                yield call_record(event)
        except Exception:  # noqa: BLE001 - the delivering read dead-letters this input
            return


class SummarizeVisitorFn(beam.CombineFn):
    """One visitor's ``CallRecord``s → their ``VisitorSummary`` (``summarize``)."""

    def __init__(self, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms

    def create_accumulator(self) -> VisitorCalls:
        return VisitorCalls()

    def add_input(self, calls: VisitorCalls, record: CallRecord) -> VisitorCalls:
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

    def extract_output(self, calls: VisitorCalls) -> VisitorSummary:
        return summarize(calls, self.ttl_ms)


def _timeline(summary: tuple[str, VisitorSummary]) -> Iterator[tuple[str, IdentityTimeline]]:
    visitor, found = summary
    if found.timeline is not None:
        yield visitor, found.timeline


def _worth_a_lookup(summary: tuple[str, VisitorSummary]) -> Iterator[tuple[str, VisitorSummary]]:
    visitor, found = summary
    if found.timeline is not None or found.first_copies:
        yield summary


def _first_copies(summary: tuple[str, VisitorSummary]) -> Iterator[tuple[tuple[str, bytes], int]]:
    visitor, found = summary
    for key, position in found.first_copies:
        yield (visitor, key), position


# ----- each id once ---------------------------------------------------------------------------------

def _is_later_copy(event: Event, first_position: int | None) -> bool:
    """Whether ``event`` is a copy read elsewhere than ``first_position``, where the identity pass found the
    copy of its id that is sent (None: its id was read once)."""
    return first_position is not None and first_position != position_rank(event.source)


class _DropLaterCopiesFn(beam.DoFn):
    """Batch, ``shuffle``: each id of a visitor once; a copy read elsewhere than the identity pass's first
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

class _EnrichFromSummaryFn(beam.DoFn):
    """Batch, ``side_input``: each call looked up in a dict side input of the visitors the identity
    pass found something for: a later copy is ``duplicate``, the others are enriched from the timeline.

    One lookup for both (not a step each): this runs for every event of a backfill.
    """

    def setup(self) -> None:
        self.failures = StepFailures("Identity")
        self.duplicate = counter(Outcome.DUPLICATE)

    def process(self, event: Event, summaries: Mapping[str, VisitorSummary]) -> Iterator[Event | DeadLetterOutput]:
        found = summaries.get(event.visitor)  # none for a visitor who needs nothing
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



# ----- the graph ------------------------------------------------------------------------------------

def enrich_in_batch(
    events: beam.PCollection,
    ttl_ms: int,
    first_read: beam.PTransform | None,
    consent: ConsentPolicy,
    replay_reasons: frozenset[str] | None,
    join: str,
) -> Any:
    """The batch steps of ``EnrichIdentity`` (its docstring): outputs ``events`` and ``dead_letters``."""
    if first_read is not None:
        calls = (events.pipeline
                 | "ReadForIdentity" >> first_read
                 | "RecordCalls" >> beam.ParDo(_RecordDeliveredCallsFn(consent, replay_reasons)))
    else:
        calls = events | "RecordEventCalls" >> beam.Map(call_record)
    summaries = calls | "SummarizePerVisitor" >> beam.CombinePerKey(SummarizeVisitorFn(ttl_ms))
    if join == "side_input":
        to_look_up = summaries | "VisitorsToLookUp" >> beam.FlatMap(_worth_a_lookup)
        return events | "LookUpVisitor" >> beam.ParDo(
            _EnrichFromSummaryFn(), beam.pvalue.AsDict(to_look_up)).with_outputs(DEAD_LETTERS, main="events")
    timelines = summaries | "Timelines" >> beam.FlatMap(_timeline)
    first_copies = summaries | "FirstCopies" >> beam.FlatMap(_first_copies)
    unique = events | "DropLaterCopies" >> beam.ParDo(_DropLaterCopiesFn(), beam.pvalue.AsDict(first_copies))
    keyed = unique | "KeyCallsByVisitor" >> beam.Map(_by_visitor)
    return ({"events": keyed, "timeline": timelines}
            | "JoinByVisitor" >> beam.CoGroupByKey()
            | "EnrichVisitor" >> beam.ParDo(_EnrichVisitorFn()).with_output_types(
                Event, dead_letters=DeadLetter).with_outputs(DEAD_LETTERS, main="events"))
