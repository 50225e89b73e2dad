"""Unit and property tests for transforms/rules/import_visits.py: visits, lines and bodies of the import sink."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.rules.events import Event, validate_event
from transforms.rules.import_visits import (
    MIN_MAX_BYTES,
    ImportBody,
    ImportCall,
    VisitLine,
    import_call,
    pack_bodies,
    split_visits,
)
from transforms.rules.woopra_mapping import Skipped, WoopraSettings, build_request

SETTINGS = WoopraSettings(project="example.com")
MINUTE_MS = 60_000


def enriched(raw: dict, traits: dict | None = None, cookie: str | None = None):
    """The event as identity leaves it: carrying the visitor's traits and cookie."""
    event = validate_event(raw)
    assert isinstance(event, Event), event
    return dataclasses.replace(event, traits=traits or {}, cookie=cookie)


def test_an_event_is_mapped_as_the_tracking_path_maps_it_without_prefixes():
    raw = {"type": "track", "event": "Order Completed", "anonymousId": "a-1", "userId": "u-1", "messageId": "m-1",
           "timestamp": "2026-03-01T10:00:00Z", "properties": {"revenue": 49.5, "currency": "EUR"},
           "context": {"ip": "203.0.113.9"}}
    event = enriched(raw, traits={"email": "j@example.com", "plan": "pro"}, cookie="COOKIE12")
    call = import_call(event, SETTINGS)
    assert isinstance(call, ImportCall)
    tracking = dict(build_request(event, SETTINGS).params)  # type: ignore[union-attr]
    visitor = json.loads(call.visitor)
    assert visitor == {"cookie": "COOKIE12", "id": "u-1", "email": "j@example.com", "plan": "pro"}
    assert visitor["email"] == tracking["cv_email"] and visitor["id"] == tracking["cv_id"]
    action = json.loads(call.action)
    assert action == {"name": "purchase", "time": 1772359200000,
                      "properties": {"app": "datafly-signal", "amount": "49.5", "currency": "EUR"}}
    assert ImportCall.from_bytes(call.to_bytes()) == call


def test_an_identify_call_has_no_action_and_an_unmapped_dropped_event_is_skipped():
    identify = enriched({"type": "identify", "anonymousId": "a-1", "timestamp": "2026-03-01T10:00:00Z",
                         "traits": {"email": "j@example.com"}}, traits={"email": "j@example.com"})
    call = import_call(identify, SETTINGS)
    assert isinstance(call, ImportCall) and call.action == "" and json.loads(call.visitor)["email"] == "j@example.com"
    dropping = WoopraSettings(project="example.com", unmapped_events="drop")
    skipped = import_call(enriched({"type": "track", "event": "Odd", "anonymousId": "a", "timestamp": 1}), dropping)
    assert isinstance(skipped, Skipped)


def call(time_ms: int, n: int, visitor: dict | None = None, action: bool = True) -> ImportCall:
    text = json.dumps({"name": f"e{n}", "time": time_ms, "properties": {"n": str(n)}}) if action else ""
    visitor_json = json.dumps(visitor or {"cookie": "C"})
    return ImportCall(time_ms, n.to_bytes(16, "big"), text, visitor_json)


def test_a_new_visit_begins_after_the_timeout_and_actions_are_in_time_order():
    calls = [call(10 * MINUTE_MS, 2), call(0, 1), call(41 * MINUTE_MS, 3), call(40 * MINUTE_MS + 1, 4)]
    lines = split_visits(calls, timeout_ms=30 * MINUTE_MS)
    visits = [json.loads(line.line) for line in lines]
    assert [[a["name"] for a in visit["actions"]] for visit in visits] == [["e1", "e2"], ["e4", "e3"]]
    assert [line.times for line in lines] == [(0, 10 * MINUTE_MS), (40 * MINUTE_MS + 1, 41 * MINUTE_MS)]


def test_the_visitor_of_a_visit_merges_its_calls_later_values_winning_and_identifies_add_no_action():
    calls = [call(0, 1, {"cookie": "C", "plan": "free"}), call(1, 2, {"cookie": "C", "email": "j@x"}, action=False),
             call(2, 3, {"cookie": "C", "plan": "pro"})]
    (line,) = split_visits(calls, timeout_ms=MINUTE_MS)
    visit = json.loads(line.line)
    assert visit["visitor"] == {"cookie": "C", "plan": "pro", "email": "j@x"}
    assert [a["name"] for a in visit["actions"]] == ["e1", "e3"] and len(line.keys) == 3
    only_identify = split_visits([call(0, 9, action=False)], timeout_ms=MINUTE_MS)
    assert json.loads(only_identify[0].line) == {"visitor": {"cookie": "C"}}


times = st.lists(st.integers(min_value=0, max_value=10 * 24 * 60 * MINUTE_MS), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(times=times, timeout=st.integers(min_value=1, max_value=3 * 60 * MINUTE_MS))
def test_visits_hold_every_call_once_in_order_and_no_gap_inside_a_visit_passes_the_timeout(times, timeout):
    calls = [call(at, n) for n, at in enumerate(times)]
    lines = split_visits(calls, timeout)
    keys = [key for line in lines for key in line.keys]
    assert sorted(keys) == sorted(c.key for c in calls)
    flat = [at for line in lines for at in line.times]
    assert flat == sorted(flat)
    for line in lines:
        assert all(b - a <= timeout for a, b in zip(line.times, line.times[1:], strict=False))
    for before, after in zip(lines, lines[1:], strict=False):
        assert after.times[0] - before.times[-1] > timeout


@settings(max_examples=50, deadline=None)
@given(count=st.integers(min_value=1, max_value=400), max_bytes=st.integers(min_value=MIN_MAX_BYTES, max_value=200_000))
def test_a_visit_too_long_for_one_body_is_cut_into_lines_that_fit(count, max_bytes):
    big = {"cookie": "C"}
    calls = [ImportCall(n, n.to_bytes(16, "big"), json.dumps({"name": "e", "time": n, "properties": {"x": "y" * 2000}}),
                        json.dumps(big)) for n in range(count)]
    lines = split_visits(calls, timeout_ms=MINUTE_MS, max_bytes=max_bytes)
    assert all(line.size <= max_bytes for line in lines)
    assert sum(len(line.keys) for line in lines) == count
    assert all(json.loads(line.line)["visitor"] == big for line in lines)


@settings(max_examples=200, deadline=None)
@given(time_ms=st.integers(min_value=-(2**63), max_value=2**63 - 1), key=st.binary(min_size=16, max_size=16),
       action=st.dictionaries(st.text(), st.text()), visitor=st.dictionaries(st.text(), st.text()))
def test_a_call_crosses_the_grouping_as_bytes_and_comes_back_the_same(time_ms, key, action, visitor):
    call = ImportCall(time_ms, key, json.dumps(action, ensure_ascii=False) if action else "",
                      json.dumps(visitor, ensure_ascii=False))
    assert ImportCall.from_bytes(call.to_bytes()) == call


def test_text_utf8_cannot_hold_is_written_as_json_escapes():
    event = enriched({"type": "track", "event": "X", "anonymousId": "a", "timestamp": 1,
                      "properties": {"bad": "\ud800 lone"}})
    call = import_call(event, SETTINGS)
    assert isinstance(call, ImportCall) and json.loads(call.action)["properties"]["bad"] == "\ud800 lone"
    assert ImportCall.from_bytes(call.to_bytes()) == call
    assert split_visits([call], timeout_ms=1)[0].line.encode("utf-8")


def line_of(size: int, n: int) -> VisitLine:
    return VisitLine("x" * (size - 1), (n.to_bytes(16, "big"),), (n,))


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(min_value=2, max_value=5_000), max_size=200),
       max_bytes=st.integers(min_value=5_000, max_value=60_000), max_visits=st.integers(min_value=1, max_value=50))
def test_bodies_keep_every_line_once_in_order_within_both_bounds_and_never_close_early(sizes, max_bytes, max_visits):
    lines = [line_of(size, n) for n, size in enumerate(sizes)]
    bodies = list(pack_bodies(lines, max_bytes, max_visits))
    assert [visit for body in bodies for visit in body.visits] == lines
    for body in bodies:
        assert len(body.payload()) <= max_bytes and 1 <= len(body.visits) <= max_visits
    for body, following in zip(bodies, bodies[1:], strict=False):
        # A body is closed only when the next line would not fit beside it.
        assert len(body.visits) == max_visits or len(body.payload()) + following.visits[0].size > max_bytes


@settings(max_examples=200, deadline=None)
@given(count=st.integers(min_value=2, max_value=300), poisoned=st.data())
def test_halving_isolates_any_one_visit_in_at_most_2_log2_n_calls(count, poisoned):
    bad = poisoned.draw(st.integers(min_value=0, max_value=count - 1))
    body = ImportBody(tuple(line_of(10, n) for n in range(count)))
    calls, rejected = 0, []
    pending = [body]
    while pending:  # what ImportSender.deliver does, with an answer of 400 for a body holding the bad visit
        current = pending.pop()
        calls += 1
        if any(visit.times == (bad,) for visit in current.visits):
            if len(current.visits) == 1:
                rejected.append(current.visits[0])
            else:
                pending.extend(current.halves())
    assert [visit.times for visit in rejected] == [(bad,)]
    assert calls <= 1 + 2 * max(1, (count - 1).bit_length())


def test_the_payload_is_one_json_line_per_visit_and_its_id_is_stable():
    lines = split_visits([call(0, 1), call(10 * 24 * 60 * MINUTE_MS, 2)], timeout_ms=MINUTE_MS)
    body = ImportBody(tuple(lines))
    payload = body.payload().decode()
    assert payload.endswith("\n") and [json.loads(line)["actions"][0]["name"] for line in payload.splitlines()] == [
        "e1", "e2"]
    assert body.body_id() == ImportBody(tuple(lines)).body_id() != ImportBody(tuple(lines[:1])).body_id()
