"""Event ids, the copy that is sent, and slices of event time (transforms/rules/event_id.py, time_range.py)."""

from __future__ import annotations

import pytest

from transforms.rules.event_id import CONTENT_PREFIX, event_id, first_copy, identity_rank, ledger_key, position_rank
from transforms.rules.events import Event
from transforms.rules.time_range import TimeRange, parse_utc_time

# ----- event ids -----------------------------------------------------------------------------------


def test_the_id_is_the_message_id_when_there_is_one():
    assert event_id({"messageId": "m-1", "type": "page"}) == "m-1"
    assert event_id({"messageId": 42, "type": "page"}) == "42"


def test_without_a_message_id_the_id_is_a_hash_of_the_content_whatever_the_key_order():
    one = {"type": "page", "anonymousId": "a", "context": {"ip": "1.2.3.4", "page": {"url": "u"}}}
    same = {"context": {"page": {"url": "u"}, "ip": "1.2.3.4"}, "anonymousId": "a", "type": "page"}
    other = {**one, "anonymousId": "b"}
    assert event_id(one) == event_id(same)
    assert event_id(one).startswith(CONTENT_PREFIX) and len(event_id(one)) == len(CONTENT_PREFIX) + 32
    assert event_id(one) != event_id(other)


@pytest.mark.parametrize("message_id", ["", "   ", None, True, [], {}])
def test_a_blank_or_odd_message_id_is_not_an_id(message_id):
    assert event_id({"messageId": message_id, "type": "page"}).startswith(CONTENT_PREFIX)


def test_content_that_json_cannot_sort_still_gets_one_stable_id():
    odd = {"type": "page", "properties": {1: "x", "a": "y"}}  # mixed key types (a Parquet map)
    assert event_id(odd) == event_id(dict(odd)) and event_id(odd).startswith(CONTENT_PREFIX)


def test_the_ledger_key_is_16_bytes_for_any_visitor_and_id():
    for key in ("m-1", "line\nbreak", "\ud800 lone surrogate", "x" * 10_000):
        assert len(ledger_key(key, key)) == 16 and len(ledger_key(key, key).hex()) == 32
    assert ledger_key("v", "m-1") != ledger_key("v", "m-2") != ledger_key("w", "m-2")


def event(at_ms: int, source: str = "in.jsonl:1", **original) -> Event:
    original.setdefault("type", "page")
    return Event(original=original, type=original["type"], visitor="v", timestamp_ms=at_ms, source=source)


def test_the_first_copy_is_the_earliest_then_the_least_by_what_it_says_then_by_where_it_was_read():
    late, early = event(2000, messageId="m"), event(1000, messageId="m", note="later in the file")
    assert first_copy([late, early]) is early
    plain = event(1000, messageId="m", type="identify", traits={"plan": "free"})
    pro = event(1000, messageId="m", type="identify", traits={"plan": "pro"})
    assert first_copy([pro, plain]) is plain and first_copy([plain, pro]) is plain
    a, b = event(1000, "a.jsonl:7", messageId="m", x=1), event(1000, "b.jsonl:7", messageId="m", x=1)
    assert first_copy([a, b]) is first_copy([b, a])
    assert first_copy([a, b]) is (a if position_rank("a.jsonl:7") < position_rank("b.jsonl:7") else b)


# ----- slices of event time ------------------------------------------------------------------------

def test_dates_and_date_times_are_utc_unless_they_say_otherwise():
    assert parse_utc_time("2024-03-01") == 1_709_251_200_000
    assert parse_utc_time("2024-03-01T00:00:00Z") == 1_709_251_200_000
    assert parse_utc_time("2024-03-01T00:00:00") == 1_709_251_200_000
    assert parse_utc_time("2024-03-01T01:00:00+01:00") == 1_709_251_200_000
    assert parse_utc_time("2024-03-01T00:00:00.250Z") == 1_709_251_200_250


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "01/03/2024", ""])
def test_a_bad_time_names_the_problem(text):
    with pytest.raises(ValueError, match="not an ISO 8601 date"):
        parse_utc_time(text)


def test_start_is_inclusive_and_end_exclusive():
    day = TimeRange(parse_utc_time("2024-03-01"), parse_utc_time("2024-03-02"))
    assert day.contains(parse_utc_time("2024-03-01")) and day.contains(parse_utc_time("2024-03-01T23:59:59.999Z"))
    assert not day.contains(parse_utc_time("2024-03-02")) and not day.contains(parse_utc_time("2024-02-29T23:59:59Z"))
    assert TimeRange(start_ms=5).contains(10**15) and TimeRange(end_ms=5).contains(-(10**12))
    assert TimeRange().contains(0) and not TimeRange().bounded and TimeRange(end_ms=1).bounded


def test_end_must_come_after_start():
    with pytest.raises(ValueError, match="--end must be after --start"):
        TimeRange(2000, 2000)


def test_copies_that_say_the_same_of_different_visitors_are_ordered_by_visitor_before_content():
    # The identity pass keeps the least identity_rank; the copy sent must be that one's visitor.
    a = Event(original={"type": "page", "messageId": "m", "anonymousId": "b", "z": 0}, type="page", visitor="b",
              timestamp_ms=1000)
    b = Event(original={"type": "page", "messageId": "m", "anonymousId": "a", "z": 1}, type="page", visitor="a",
              timestamp_ms=1000)
    assert first_copy([a, b]).visitor == first_copy([b, a]).visitor == min(identity_rank(a), identity_rank(b))[1]
