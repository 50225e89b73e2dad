"""Unit tests for transforms/rules/events.py: parsing and validating one raw input.

The rules: docs/behaviour.md#input-events and #dead-letters.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from transforms.rules.events import (
    Event,
    InvalidInput,
    NotReplayed,
    RawInput,
    Unsupported,
    decode_nested_json,
    is_dead_letter,
    parse_input,
    parse_timestamp_ms,
    validate_event,
)

NOW_MS = 1_800_000_000_000
ANON = "f47ac10b-58cc-4372-a567-0d02b2c3d479"
SEED_TS = "2026-03-02T09:21:47.005Z"
SEED_TS_MS = int(datetime(2026, 3, 2, 9, 21, 47, 5000, tzinfo=UTC).timestamp() * 1000)

TRACK = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "0b6e4f5c-9d2a-4c7e-8f11-2a3b4c5d6e02",
    "anonymousId": ANON,
    "userId": "user-123",
    "timestamp": SEED_TS,
    "properties": {"order_id": "ORD-001", "revenue": 149.95, "currency": "USD", "coupon": "WELCOME10"},
    "traits": {},
    "context": {
        "ip": "203.0.113.50",
        "userAgent": "Mozilla/5.0 ...",
        "page": {"url": "https://shop.example.com/checkout", "path": "/checkout",
                 "title": "Checkout", "referrer": "https://www.google.com/"},
        "consent": {"analytics": True, "marketing": False},
    },
    "vendor_ids": {"woopra_cookie": "AH47DHS5SF182DIQZJD"},
}


def track(**changes):
    event = copy.deepcopy(TRACK)
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


# ----- parse_input: the happy path ------------------------------------------------------------

def test_parse_input_json_text_gives_event_with_spec_fields():
    result = parse_input(RawInput(json.dumps(TRACK), source="events.jsonl"), now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert result.type == "track"
    assert result.name == "Order Completed"
    assert result.visitor == ANON
    assert result.user_id == "user-123"
    assert result.timestamp_ms == SEED_TS_MS
    assert result.original == TRACK
    assert result.own_cookie == "AH47DHS5SF182DIQZJD"


def test_parse_input_accepts_utf8_bytes():
    event = track(properties={"name": "Café ☕"})
    result = parse_input(RawInput(json.dumps(event, ensure_ascii=False).encode("utf-8")), now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert result.original["properties"]["name"] == "Café ☕"


def test_parse_input_accepts_decoded_dict_row():
    result = parse_input(RawInput(copy.deepcopy(TRACK)), now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert result.original["properties"]["order_id"] == "ORD-001"


def test_parse_input_parquet_row_with_nested_json_strings_is_decoded():
    row = copy.deepcopy(TRACK)
    for key in ("properties", "context", "vendor_ids", "traits"):
        row[key] = json.dumps(row[key])
    result = parse_input(RawInput(row), now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert result.original["properties"]["revenue"] == 149.95
    assert result.original["context"]["ip"] == "203.0.113.50"
    assert result.own_cookie == "AH47DHS5SF182DIQZJD"


def test_parse_input_keeps_pubsub_attributes_on_event_and_on_invalid_input():
    attrs = {"origin": "web"}
    ok = parse_input(RawInput(json.dumps(TRACK), attributes=attrs), now_ms=NOW_MS)
    bad = parse_input(RawInput("{nope", attributes=attrs), now_ms=NOW_MS)
    assert isinstance(ok, Event) and ok.attributes == attrs
    assert isinstance(bad, InvalidInput) and bad.attributes == attrs


# ----- parse_input: invalid input ------------------------------------------------------------

@pytest.mark.parametrize("text", ["{not json", "", "   ", '{"type": "track",', "nul\x00l"])
def test_parse_input_undecodable_text_is_invalid_json_with_raw_line(text):
    result = parse_input(RawInput(text), now_ms=NOW_MS)
    assert isinstance(result, InvalidInput)
    assert result.reason == "invalid_json"
    assert result.event is None
    assert result.raw == text


def test_parse_input_invalid_utf8_bytes_is_invalid_json():
    result = parse_input(RawInput(b'{"type": "\xff\xfe"}'), now_ms=NOW_MS)
    assert isinstance(result, InvalidInput)
    assert result.reason == "invalid_json"
    assert result.event is None
    assert isinstance(result.raw, str)


@pytest.mark.parametrize("text", ["[1, 2]", "42", '"track"', "null", "true"])
def test_parse_input_json_that_is_not_an_object_is_invalid_event(text):
    result = parse_input(RawInput(text), now_ms=NOW_MS)
    assert isinstance(result, InvalidInput)
    assert result.reason == "invalid_event"


# ----- validate_event -----------------------------------------------------------------------

@pytest.mark.parametrize("call_type", ["page", "track", "identify"])
def test_validate_event_accepts_delivered_types(call_type):
    event = track(type=call_type)
    if call_type != "track":
        event.pop("event")
    result = validate_event(event, now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert result.type == call_type


@pytest.mark.parametrize("call_type", ["group", "alias", "screen"])
def test_validate_event_unsupported_types_are_counted_not_errors(call_type):
    result = validate_event(track(type=call_type), now_ms=NOW_MS)
    assert result == Unsupported(call_type)


@pytest.mark.parametrize(
    "changes, error_fragment",
    [
        ({"type": None}, "type"),
        ({"type": ""}, "type"),
        ({"type": 7}, "type"),
        ({"type": "purchase"}, "purchase"),
        ({"event": None}, "event"),
        ({"event": ""}, "event"),
        ({"event": "   "}, "event"),
        ({"event": 12}, "event"),
        ({"anonymousId": None, "userId": None}, "anonymousId"),
        ({"anonymousId": "", "userId": "  "}, "anonymousId"),
        ({"anonymousId": True, "userId": None}, "anonymousId"),
        ({"properties": "not an object"}, "properties"),
        ({"properties": [1, 2]}, "properties"),
        ({"traits": "x"}, "traits"),
        ({"context": 5}, "context"),
        ({"vendor_ids": ["AH47"]}, "vendor_ids"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": ""}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"timestamp": ["2026-03-02"]}, "timestamp"),
    ],
)
def test_validate_event_rejects_bad_fields_as_invalid_event_keeping_the_object(changes, error_fragment):
    event = track(**changes)
    result = validate_event(event, now_ms=NOW_MS)
    assert isinstance(result, InvalidInput)
    assert result.reason == "invalid_event"
    assert result.event == event
    assert result.raw is None
    assert error_fragment in result.error


def test_validate_event_page_and_identify_need_no_event_name():
    for call_type in ("page", "identify"):
        result = validate_event(track(type=call_type, event=None), now_ms=NOW_MS)
        assert isinstance(result, Event), call_type


def test_validate_event_visitor_is_anonymous_id_when_both_ids_present():
    result = validate_event(track(anonymousId="anon-1", userId="user-1"), now_ms=NOW_MS)
    assert (result.visitor, result.user_id) == ("anon-1", "user-1")


def test_validate_event_visitor_falls_back_to_user_id():
    result = validate_event(track(anonymousId=None, userId="user-1"), now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert (result.visitor, result.user_id) == ("user-1", "user-1")


def test_validate_event_numeric_user_id_is_accepted_as_string():
    result = validate_event(track(anonymousId=None, userId=123), now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert result.visitor == "123"
    assert result.user_id == "123"


def test_validate_event_missing_timestamp_uses_read_time():
    result = validate_event(track(timestamp=None), now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert result.timestamp_ms == NOW_MS


def test_validate_event_null_optional_objects_are_fine():
    event = track()
    event["properties"] = None
    event["context"] = None
    result = validate_event(event, now_ms=NOW_MS)
    assert isinstance(result, Event)


# ----- parse_timestamp_ms ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "value, expected",
    [
        (SEED_TS, SEED_TS_MS),
        ("2026-03-02T09:21:47.005z", SEED_TS_MS),
        ("2026-03-02T09:21:47.005+00:00", SEED_TS_MS),
        ("2026-03-02T11:21:47.005+02:00", SEED_TS_MS),
        ("2026-03-02T04:21:47.005-05:00", SEED_TS_MS),
        ("2026-03-02T09:21:47.005", SEED_TS_MS),  # naive: taken as UTC
        ("2026-03-02T09:21:47.005000Z", SEED_TS_MS),
        ("2026-03-02T09:21:47Z", SEED_TS_MS - 5),
        ("  2026-03-02T09:21:47.005Z ", SEED_TS_MS),
        ("1970-01-01T00:00:00Z", 0),
        (SEED_TS_MS, SEED_TS_MS),
        (float(SEED_TS_MS), SEED_TS_MS),
        (datetime(2026, 3, 2, 9, 21, 47, 5000, tzinfo=UTC), SEED_TS_MS),
        (datetime(2026, 3, 2, 9, 21, 47, 5000), SEED_TS_MS),
        (datetime(2026, 3, 2, 10, 21, 47, 5000, tzinfo=timezone(timedelta(hours=1))), SEED_TS_MS),
    ],
)
def test_parse_timestamp_ms_accepts_iso8601_and_epoch_ms(value, expected):
    assert parse_timestamp_ms(value) == expected


@pytest.mark.parametrize("value", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-03-02T25:00:00Z",
                                   True, False, None, [], {}])
def test_parse_timestamp_ms_rejects_non_timestamps_with_value_error(value):
    with pytest.raises(ValueError):
        parse_timestamp_ms(value)


# ----- decode_nested_json --------------------------------------------------------------------

def test_decode_nested_json_decodes_object_strings_of_nested_fields_only():
    row = {
        "type": "track",
        "event": "Order Completed",
        "properties": '{"a": 1}',
        "context": ' {"ip": "1.2.3.4"}',
        "vendor_ids": '{"woopra_cookie": "C"}',
        "traits": "{broken",
        "messageId": '{"not": "a nested field"}',
    }
    decoded = decode_nested_json(row)
    assert decoded["properties"] == {"a": 1}
    assert decoded["context"] == {"ip": "1.2.3.4"}
    assert decoded["vendor_ids"] == {"woopra_cookie": "C"}
    assert decoded["traits"] == "{broken"  # left for validation to report
    assert decoded["messageId"] == '{"not": "a nested field"}'
    assert decoded["event"] == "Order Completed"
    assert row["properties"] == '{"a": 1}'  # input not mutated


def test_decode_nested_json_drops_null_columns_but_keeps_event_and_raw():
    decoded = decode_nested_json({"type": "page", "userId": None, "traits": None, "event": None, "raw": None})
    assert decoded == {"type": "page", "event": None, "raw": None}


def test_parquet_row_with_broken_nested_json_string_is_invalid_event():
    row = copy.deepcopy(TRACK)
    row["properties"] = '{"order_id": '
    result = parse_input(RawInput(row), now_ms=NOW_MS)
    assert isinstance(result, InvalidInput)
    assert result.reason == "invalid_event"
    assert "properties" in result.error


# ----- Event helpers -------------------------------------------------------------------------

def test_own_traits_of_identify_merge_context_traits_and_traits_with_traits_winning():
    event = track(type="identify", event=None, traits={"email": "a@x.com", "name": "New"},
                  context={"traits": {"name": "Old", "plan": "pro"}})
    result = validate_event(event, now_ms=NOW_MS)
    assert result.own_traits == {"email": "a@x.com", "name": "New", "plan": "pro"}


def test_own_traits_of_track_use_context_traits_not_top_level_traits():
    event = track(traits={"email": "ignored@x.com"}, context={"traits": {"plan": "pro"}})
    result = validate_event(event, now_ms=NOW_MS)
    assert result.own_traits == {"plan": "pro"}


@pytest.mark.parametrize("vendor_ids, expected", [
    ({"woopra_cookie": "AH47"}, "AH47"),
    ({"woopra_cookie": ""}, None),
    ({"woopra_cookie": 12}, "12"),  # a numeric cookie is sent as its text
    ({"woopra_cookie": True}, None),
    ({"woopra_cookie": {"x": 1}}, None),
    ({"other": "x"}, None),
    (None, None),
])
def test_own_cookie_reads_vendor_ids_woopra_cookie(vendor_ids, expected):
    result = validate_event(track(vendor_ids=vendor_ids), now_ms=NOW_MS)
    assert result.own_cookie == expected


# Issue 21, item 4: peers' inputs keep their Woopra cookie (docs/behaviour.md#identity).
RUDDER_ID = [{"type": "woopraId", "id": "RUDDERCOOKIE"}]
SEGMENT_OPTIONS = {"Woopra": {"cookie": "SEGMENTCOOKIE"}}


@pytest.mark.parametrize("fields, expected", [
    ({"context": {"externalId": RUDDER_ID}}, "RUDDERCOOKIE"),
    ({"context": {"externalId": [{"type": "brazeExternalId", "id": "B"}, {"type": "WOOPRAID", "id": 7}]}}, "7"),
    ({"context": {"externalId": [{"type": "woopraId", "id": ""}, {"type": "woopraId", "id": "SECOND"}]}}, "SECOND"),
    ({"integrations": SEGMENT_OPTIONS}, "SEGMENTCOOKIE"),
    ({"integrations": {"woopra": {"cookie": "LOWER"}}}, "LOWER"),
    ({"integrations": {"Woopra": True, "woopra": {"cookie": "LOWER"}}}, "LOWER"),
    # Precedence: vendor_ids.woopra_cookie, then context.externalId, then integrations.Woopra.cookie.
    ({"vendor_ids": {"woopra_cookie": "OURS"}, "context": {"externalId": RUDDER_ID},
      "integrations": SEGMENT_OPTIONS}, "OURS"),
    ({"context": {"externalId": RUDDER_ID}, "integrations": SEGMENT_OPTIONS}, "RUDDERCOOKIE"),
    ({"vendor_ids": {"woopra_cookie": ""}, "integrations": SEGMENT_OPTIONS}, "SEGMENTCOOKIE"),
    # Shapes that say nothing, never an error.
    ({"context": {"externalId": {"type": "woopraId", "id": "X"}}}, None),
    ({"context": {"externalId": ["woopraId", None, 3, {"type": None}]}}, None),
    ({"integrations": {"Woopra": {"cookie": {"nested": 1}}}}, None),
    ({"integrations": ["Woopra"]}, None),
    ({"integrations": {"All": False}}, None),
], ids=["rudder", "rudder-any-case-numeric", "rudder-first-usable", "segment", "segment-lower-case",
        "segment-cased-not-object", "vendor-ids-first", "external-id-before-integrations",
        "blank-vendor-cookie-falls-through", "external-id-not-a-list", "external-id-junk",
        "cookie-not-text", "integrations-not-object", "no-woopra-options"])
def test_own_cookie_reads_peers_inputs_in_order(fields, expected):
    obj = track(vendor_ids=None)
    obj.update(fields)
    result = validate_event(obj, now_ms=NOW_MS)
    assert result.own_cookie == expected


# ----- dead letters as input (replay, docs/behaviour.md#dead-letters) -------------------------

def dead_letter(reason, event, raw=None):
    return {
        "reason": reason, "error": "HTTP 400", "status": 400, "response_body": "{}",
        "attempts": 1, "failed_at": "2026-11-26T10:00:00Z",
        "request": {"method": "GET", "url": "https://www.woopra.com/track/ce/",
                    "params": {"project": "mywebsite.com", "event": "purchase"},
                    "headers": {"User-Agent": "Mozilla/5.0 ..."}},
        "event": event, "raw": raw,
    }


@pytest.mark.parametrize("reason", ["rejected", "retries_exhausted", "too_large"])
def test_replaying_dead_letter_re_reads_its_event(reason):
    line = json.dumps(dead_letter(reason, TRACK))
    result = parse_input(RawInput(line), now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert result.original == TRACK
    assert result.timestamp_ms == SEED_TS_MS
    assert result.name == "Order Completed"


def test_replay_reasons_skip_dead_letters_of_other_reasons_and_keep_plain_events():
    only_rejected = frozenset({"rejected"})
    kept = parse_input(RawInput(json.dumps(dead_letter("rejected", TRACK))), NOW_MS, only_rejected)
    skipped = parse_input(RawInput(json.dumps(dead_letter("retries_exhausted", TRACK))), NOW_MS, only_rejected)
    plain = parse_input(RawInput(json.dumps(TRACK)), NOW_MS, only_rejected)
    assert isinstance(kept, Event) and kept.original == TRACK
    assert skipped == NotReplayed("retries_exhausted")
    assert isinstance(plain, Event)
    assert is_dead_letter(dead_letter("rejected", TRACK)) and not is_dead_letter(TRACK)


def test_replaying_invalid_json_dead_letter_re_reads_its_raw_line():
    still_bad = parse_input(RawInput(json.dumps(dead_letter("invalid_json", None, raw="{oops"))), now_ms=NOW_MS)
    assert isinstance(still_bad, InvalidInput)
    assert still_bad.reason == "invalid_json"
    assert still_bad.raw == "{oops"

    fixed = parse_input(RawInput(json.dumps(dead_letter("invalid_json", None, raw=json.dumps(TRACK)))),
                        now_ms=NOW_MS)
    assert isinstance(fixed, Event)
    assert fixed.original == TRACK


def test_replaying_invalid_event_dead_letter_is_invalid_again_with_the_event():
    bad = track(anonymousId=None, userId=None)
    result = parse_input(RawInput(json.dumps(dead_letter("invalid_event", bad))), now_ms=NOW_MS)
    assert isinstance(result, InvalidInput)
    assert result.reason == "invalid_event"
    assert result.event == bad


def test_replaying_dead_letter_parquet_row_with_event_as_json_string():
    row = dead_letter("rejected", json.dumps(TRACK))
    row["request"] = json.dumps(row["request"])
    result = parse_input(RawInput(row), now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert result.original == TRACK


def test_event_with_reason_but_no_failed_at_is_not_taken_for_a_dead_letter():
    event = track(reason="promo")
    result = parse_input(RawInput(json.dumps(event)), now_ms=NOW_MS)
    assert isinstance(result, Event)
    assert result.original["reason"] == "promo"
    assert result.name == "Order Completed"
