"""Pipeline tests of the backfill steps: each id once (batch and streaming), the two identity joins,
and Select to send (slices and the ledger). docs/backfill.md."""

from __future__ import annotations

import datetime
import json
import random
import time

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Timestamp

from tests.conftest import batch_pipeline, streaming_pipeline
from transforms.counters import process_tally
from transforms.delivery.ledger import LedgerWriter, delivered_files
from transforms.enrich_identity import EnrichIdentity
from transforms.identity_batch import SummarizeVisitorFn
from transforms.parse_events import ParseEvents
from transforms.read_events import ReadEvents
from transforms.rules.event_id import event_id, first_copy, ledger_key
from transforms.rules.events import validate_event
from transforms.rules.identity import MS_PER_DAY, IdentityFact, VisitorIdentity, enrich_in_order
from transforms.rules.time_range import TimeRange, parse_utc_time
from transforms.select_to_send import SelectToSend

GRANTED = {"consent": {"analytics": True}}


def call(**fields):
    base = {"type": "track", "event": "Signed Up", "anonymousId": "a-1", "timestamp": "2026-03-02T09:00:00Z",
            "context": dict(GRANTED)}
    base.update(fields)
    return base


def view(event):
    return (event.visitor, event.type, event.name, event.timestamp_ms, event.traits.get("plan"), event.cookie)


class Tally:
    """What this process counts while a block runs (the runners here run in this process)."""

    def __enter__(self):
        self.before = process_tally()
        return self

    def __exit__(self, *exc):
        after = process_tally()
        self.counts = {key: after.get(key, 0) - self.before.get(key, 0) for key in after}

    def __getitem__(self, key):
        return self.counts.get(key, 0)


# ----- batch: each id once --------------------------------------------------------------------------

@pytest.mark.parametrize("join", ["side_input", "shuffle"])
def test_a_batch_sends_each_id_once_the_earliest_copy(join):
    first = call(messageId="m-1", timestamp="2026-03-02T09:00:00Z")
    resent = call(messageId="m-1", timestamp="2026-03-02T09:05:00Z")  # a publisher's retry, stamped later
    no_id = call(event="Order Completed", anonymousId="b-2")
    inputs = (resent, first, no_id, dict(no_id), call(messageId="m-2"), dict(no_id))
    events = [validate_event(e, source=f"in.jsonl:{line}") for line, e in enumerate(inputs, start=1)]
    with Tally() as tally:
        with batch_pipeline() as p:
            out = (p | beam.Create(events) | EnrichIdentity(join=join)).events | beam.Map(
                lambda e: (event_id(e.original), e.timestamp_ms))
            assert_that(out, equal_to([
                ("m-1", parse_utc_time("2026-03-02T09:00:00Z")), ("m-2", parse_utc_time("2026-03-02T09:00:00Z")),
                (event_id(no_id), parse_utc_time("2026-03-02T09:00:00Z"))]))
    assert tally["duplicate"] == 3


@pytest.mark.parametrize("join", ["side_input", "shuffle"])
def test_identity_learns_from_the_copy_that_is_sent_only(join, tmp_path):
    # Two copies of one identify (same messageId) that disagree: the job sends one, and the later
    # track carries that one's traits, never the other's, also when the identity pass reads the file.
    plain = call(type="identify", messageId="m-1", traits={"plan": "free"}, timestamp="2026-03-02T09:00:00Z")
    other = call(type="identify", messageId="m-1", traits={"plan": "pro"}, timestamp="2026-03-02T09:00:00Z")
    later = call(messageId="m-2", timestamp="2026-03-02T10:00:00Z")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in (other, later, plain)))
    with batch_pipeline() as p:
        events = (p | ReadEvents(str(path)) | ParseEvents()).events
        out = (events | EnrichIdentity(first_read=ReadEvents(str(path)), join=join)).events | beam.Map(
            lambda e: (e.type, e.traits.get("plan")))
        assert_that(out, equal_to([("identify", "free"), ("track", "free")]))


def _histories(seed: int) -> list:
    rng = random.Random(seed)
    minutes = rng.sample(range(60 * 24 * 20), 60)  # distinct times: same-millisecond calls are a documented edge
    events = []
    for minute in minutes:
        visitor = f"v-{rng.randrange(12)}"
        kind = rng.choice(["page", "track", "identify"])
        fields = {"type": kind, "anonymousId": visitor, "timestamp": parse_utc_time("2026-03-01") + minute * 60_000,
                  "context": dict(GRANTED), "messageId": f"m-{rng.randrange(50)}"}
        if kind == "track":
            fields["event"] = "Signed Up"
        if kind == "identify":
            fields["traits"] = {"plan": rng.choice(["free", "pro", "team"])}
        if rng.random() < 0.3:
            fields["vendor_ids"] = {"woopra_cookie": f"C{rng.randrange(5)}"}
        events.append(validate_event(fields, source=f"in.jsonl:{len(events) + 1}"))
    return events


def _in_order(events: list, ttl_ms: int) -> list:
    """The rules applied by hand: the first copy of each id of a visitor, then each visitor's calls in order."""
    by_id: dict = {}
    for event in events:
        by_id.setdefault((event.visitor, event_id(event.original)), []).append(event)
    by_visitor: dict = {}
    for copies in by_id.values():
        sent = first_copy(copies)
        by_visitor.setdefault(sent.visitor, []).append(sent)
    return [view(e) for calls in by_visitor.values() for e in enrich_in_order(calls, VisitorIdentity(), ttl_ms)[0]]


@pytest.mark.parametrize("join", ["side_input", "shuffle"])
@pytest.mark.parametrize("seed", range(3))
def test_both_joins_enrich_as_the_rules_applied_in_order(seed, join):
    events = _histories(seed)
    expected = _in_order(events, ttl_ms=10 * MS_PER_DAY)
    assert len(expected) > 20 and any(row[4] for row in expected)
    with batch_pipeline() as p:
        out = (p | beam.Create(events) | EnrichIdentity(ttl_days=10, join=join)).events | beam.Map(view)
        assert_that(out, equal_to(expected))


ID_1, ID_2 = b"1" * 16, b"2" * 16  # two id digests


def test_a_visitor_with_one_call_needs_no_timeline_and_two_calls_do():
    fold = SummarizeVisitorFn(ttl_ms=10**9)

    def summary(*records):
        calls = fold.create_accumulator()
        for record in records:
            calls = fold.add_input(calls, record)
        return fold.extract_output(calls)

    cookie = IdentityFact(1000, None, None, "COOKIE")
    assert summary((ID_1, cookie, 7)) == (None, ())
    # A copy is not a second call; the copy sent is the one read at 3.
    assert summary((ID_1, cookie, 7), (ID_1, cookie, 3)) == (None, ((ID_1, 3),))
    assert summary((ID_1, cookie, 7), (ID_2, IdentityFact(2000), 8)).timeline is not None
    # Two calls that say nothing: no timeline.
    assert summary((ID_1, IdentityFact(1), 1), (ID_2, IdentityFact(2), 2)).timeline is None


def test_the_identity_pass_keeps_the_fact_of_the_copy_that_is_sent_in_any_order_of_merging():
    fold = SummarizeVisitorFn(ttl_ms=10**9)
    free, pro = (IdentityFact(1000, {"plan": "free"}), 9), (IdentityFact(1000, {"plan": "pro"}), 1)
    later, same = (IdentityFact(5000, {"plan": "team"}), 2), (IdentityFact(1000, {"plan": "free"}), 4)
    silent = (IdentityFact(1000), 99)  # says nothing: the least by what it says
    other = (IdentityFact(3000, {"plan": "x"}), 5)  # another id, whose fact the timeline shows from 3000
    for parts in ([[free], [pro, later, same]], [[pro], [same], [free], [later]], [[later, pro, same, free]],
                  [[silent, other], [free, pro]], [[free], [silent], [other, later]]):
        accumulators = []
        for part in parts:
            accumulator = fold.create_accumulator()
            for fact, position in part:
                key = ID_2 if fact.at_ms == 3000 else ID_1
                accumulator = fold.add_input(accumulator, (key, fact, position))
            accumulators.append(fold.compact(accumulator))
        summary = fold.extract_output(fold.merge_accumulators(accumulators))
        silent_sent = any(silent in part for part in parts)
        assert summary.first_copies == ((ID_1, 99 if silent_sent else 4),)  # "free" at 4 is less than at 9
        if any(other in part for part in parts):  # a second id: the visitor has a timeline
            known_at_2000 = summary.timeline.at(2000)
            assert (known_at_2000 is None) if silent_sent else (known_at_2000.traits == {"plan": "free"})
            assert summary.timeline.at(3000).traits["plan"] == "x"
        else:
            assert summary.timeline is None  # one id: its copy carries all it says


def test_values_with_the_same_json_text_stay_apart_in_the_identity_pass():
    fold = SummarizeVisitorFn(ttl_ms=10**9)
    calls = fold.create_accumulator()
    day = datetime.date(2026, 1, 2)
    for n, traits in enumerate([None, None, {"since": day}, {"since": "2026-01-02"}, {"since": day}]):
        fold.add_input(calls, (bytes([n]) * 16, IdentityFact(1000 + n, traits, None, "COOKIE"), n))
    timeline = fold.extract_output(calls).timeline
    assert [timeline.at(1000 + n).traits for n in range(2, 5)] == [{"since": day}, {"since": "2026-01-02"},
                                                                  {"since": day}]


def test_an_unknown_join_is_refused():
    with pytest.raises(ValueError, match="join must be one of"):
        EnrichIdentity(join="broadcast")


# ----- streaming: copies within the window ----------------------------------------------------------

NOW_MS = int(time.time() * 1000)


def _at(ms: int) -> str:
    return Timestamp(micros=ms * 1000).to_rfc3339()


def _stream_of_copies():
    original = validate_event(call(messageId="m-1", timestamp=_at(NOW_MS)))
    copy = validate_event(call(messageId="m-1", timestamp=_at(NOW_MS)))
    other = validate_event(call(messageId="m-2", timestamp=_at(NOW_MS + 10)))
    stream = TestStream()
    for event, watermark in ((original, NOW_MS + 1), (copy, NOW_MS + 2), (other, NOW_MS + 20), (copy, NOW_MS + 30)):
        stream.add_elements([beam.window.TimestampedValue(event, event.timestamp_ms / 1000)])
        stream.advance_watermark_to(Timestamp(micros=watermark * 1000))
    return stream.advance_watermark_to_infinity()


def test_streaming_drops_copies_released_within_the_window():
    with Tally() as tally:
        with streaming_pipeline() as p:
            out = (p | _stream_of_copies() | EnrichIdentity(dedup_window_seconds=600)).events | beam.Map(
                lambda e: event_id(e.original))
            assert_that(out, equal_to(["m-1", "m-2"]))
    assert tally["duplicate"] == 2


def test_streaming_with_no_window_sends_every_copy():
    with streaming_pipeline() as p:
        out = (p | _stream_of_copies() | EnrichIdentity(dedup_window_seconds=0)).events | beam.Map(
            lambda e: event_id(e.original))
        assert_that(out, equal_to(["m-1", "m-1", "m-2", "m-1"]))


# ----- select to send -------------------------------------------------------------------------------

def test_select_to_send_keeps_the_slice_and_skips_what_the_ledger_says_was_delivered(tmp_path):
    days = ["2024-02-29T23:59:59.999Z", "2024-03-01T00:00:00Z", "2024-03-15T12:00:00Z", "2024-04-01T00:00:00Z"]
    events = [validate_event(call(messageId=f"m-{n}", timestamp=day)) for n, day in enumerate(days)]
    delivered = validate_event(call(messageId="delivered", timestamp="2024-03-10T00:00:00Z"))
    # The same messageId from another visitor is another event: not skipped.
    other_visitor = validate_event(call(messageId="delivered", timestamp="2024-03-10T00:00:00Z",
                                        anonymousId="someone-else"))
    events += [delivered, other_visitor]
    writer = LedgerWriter(str(tmp_path / "ledger"), "earlier-run")
    writer.record(ledger_key(delivered.visitor, "delivered"))
    writer.close()
    march = TimeRange(parse_utc_time("2024-03-01"), parse_utc_time("2024-04-01"))
    with Tally() as tally:
        with batch_pipeline() as p:
            kept = (p | beam.Create(events)
                    | SelectToSend(march, tuple(delivered_files(str(tmp_path / "ledger"))))
                    | beam.Map(lambda e: (e.original["messageId"], e.visitor)))
            assert_that(kept, equal_to([("m-1", delivered.visitor), ("m-2", delivered.visitor),
                                        ("delivered", "someone-else")]))
    assert (tally["out_of_range"], tally["skipped_ledger"]) == (2, 1)


def test_a_file_two_patterns_match_is_read_once(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(call(messageId=f"m-{n}")) + "\n" for n in range(3)))
    with batch_pipeline() as p:
        sources = p | ReadEvents(f"{path},{tmp_path}/*.jsonl") | beam.Map(lambda raw: raw.source)
        assert_that(sources, equal_to([f"{path}:{line}" for line in (1, 2, 3)]))
