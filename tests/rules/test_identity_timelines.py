"""Unit tests for the batch identity timeline (transforms/rules/identity.py, transforms/enrich_identity.py).

The timeline must give every call exactly what replaying the visitor's calls in event-time order
gives (``enrich_in_order``, the rule streaming and the debugger use), whatever order the facts
arrive in and however a combiner splits them.
"""

from __future__ import annotations

import json
import random

from tests.rules.test_identity import make as make_call
from transforms.identity_batch import SummarizeVisitorFn
from transforms.rules.consent import ConsentPolicy
from transforms.rules.events import RawInput
from transforms.rules.identity import (
    IdentityFact,
    IdentityTimeline,
    VisitorIdentity,
    delivered_event,
    enrich_in_order,
    merge_spans,
    with_known_identity,
)

DAY_MS = 86_400_000
TTL_MS = 30 * DAY_MS
START_MS = 1_770_000_000_000


def make(call_type, at_ms, **fields):
    """A validated call at ``at_ms`` (Unix ms), built as tests/rules/test_identity.py builds them."""
    return make_call(call_type, at_ms, **{"anonymous_id": "anon-1", **fields})


def timeline_of(events, ttl_ms=TTL_MS, split=1, seed=0):
    """Build the timeline as the Beam combiner would: facts in ``split`` shuffled accumulators."""
    fn = SummarizeVisitorFn(ttl_ms)
    records = [(n.to_bytes(16, "big"), IdentityFact.of(e), n) for n, e in enumerate(events)]  # each call its own id
    random.Random(seed).shuffle(records)
    accumulators = []
    for part in range(split):
        accumulator = fn.create_accumulator()
        for record in records[part::split]:
            accumulator = fn.add_input(accumulator, record)
        accumulators.append(fn.compact(accumulator))
    return fn.extract_output(fn.merge_accumulators(accumulators)).timeline


def enriched_from_timeline(events, timeline):
    return [with_known_identity(e, timeline.at(e.timestamp_ms) if timeline else None) for e in events]


def view(event):
    return event.timestamp_ms, dict(event.traits), event.user_id, event.cookie


def random_history(rng, count):
    """One visitor's calls at distinct times, with TTL-sized gaps now and then."""
    events, at = [], START_MS
    for _ in range(count):
        at += rng.choice([1_000, 60_000, DAY_MS, 29 * DAY_MS, TTL_MS + 1, 45 * DAY_MS])
        kind = rng.choice(["page", "track", "identify", "identify"])
        traits = {rng.choice(["plan", "Plan", "email", "name"]): rng.choice(["a", "b", "c@x.com"])}
        events.append(make(
            kind, at,
            user_id=rng.choice([None, None, "u1", "u2"]),
            traits=traits if kind == "identify" else None,
            context_traits=rng.choice([None, None, {"tier": rng.choice(["gold", "silver"])}]),
            cookie=rng.choice([None, None, "COOKIE-A", "COOKIE-B"]),
        ))
    return events


# ----- merge_spans -----------------------------------------------------------------------------

def test_merge_spans_joins_spans_at_most_the_ttl_apart_in_any_order():
    spans = [(50, 50), (0, 0), (10, 10), (21, 21), (60, 70)]
    assert merge_spans(spans, ttl_ms=10) == [(0, 10), (21, 21), (50, 70)]
    assert merge_spans(reversed(spans), ttl_ms=11) == [(0, 21), (50, 70)]
    assert merge_spans([], ttl_ms=10) == []


def test_merge_spans_keeps_the_later_end_of_a_span_inside_another():
    assert merge_spans([(0, 100), (5, 10)], ttl_ms=1) == [(0, 100)]


# ----- timeline == in-order replay ---------------------------------------------------------------

def test_timeline_matches_in_order_replay_on_random_histories_and_splits():
    rng = random.Random(7)
    for case in range(300):
        events = random_history(rng, rng.randint(1, 25))
        expected = [view(e) for e in enrich_in_order(events, VisitorIdentity(), TTL_MS)[0]]
        for split in (1, 3):
            timeline = timeline_of(events, split=split, seed=case)
            got = sorted(view(e) for e in enriched_from_timeline(events, timeline))
            assert got == expected, (case, split)


def test_a_later_identify_in_the_input_enriches_calls_after_it_but_not_before():
    before = make("track", START_MS)
    identify = make("identify", START_MS + 1_000, user_id="u1", traits={"Email": "a@x.com"}, cookie="C")
    after = make("page", START_MS + 2_000)
    timeline = timeline_of([after, identify, before])
    first, _, last = enriched_from_timeline([before, identify, after], timeline)
    assert (first.user_id, dict(first.traits)) == (None, {})
    assert (last.user_id, dict(last.traits), last.cookie) == ("u1", {"email": "a@x.com"}, "C")


def test_identity_does_not_cross_a_gap_longer_than_the_ttl():
    identify = make("identify", START_MS, traits={"plan": "pro"})
    soon = make("track", START_MS + TTL_MS)
    much_later = make("track", START_MS + 3 * TTL_MS)
    timeline = timeline_of([identify, soon, much_later])
    _, got_soon, got_later = enriched_from_timeline([identify, soon, much_later], timeline)
    assert dict(got_soon.traits) == {"plan": "pro"}
    assert dict(got_later.traits) == {}


def test_calls_at_the_same_millisecond_see_each_others_facts_but_keep_their_own_values():
    identify = make("identify", START_MS, user_id="u1", traits={"plan": "pro"})
    track = make("track", START_MS, context_traits={"plan": "free"})
    timeline = timeline_of([track, identify])
    got_identify, got_track = enriched_from_timeline([identify, track], timeline)
    assert (got_track.user_id, got_track.traits["plan"]) == ("u1", "free")
    assert got_identify.traits["plan"] == "pro"


def test_a_visitor_who_says_nothing_has_no_timeline_and_gets_the_fallback_cookie():
    events = [make("page", START_MS), make("track", START_MS + 1)]
    assert timeline_of(events) is None
    enriched = enriched_from_timeline(events, None)
    assert enriched[0].cookie and enriched[0].cookie == enriched[1].cookie


def test_timeline_keeps_only_the_moments_identity_changes():
    events = [make("page", START_MS + i * 1_000, cookie="SAME") for i in range(50)]
    timeline = timeline_of(events)
    assert isinstance(timeline, IdentityTimeline)
    assert len(timeline.changes) == 1 and timeline.change_times == [START_MS]


# ----- delivered_event: the first pass keeps only what the job delivers ---------------------------------

def line(**fields):
    return json.dumps(fields).encode()


GRANTED = {"consent": {"analytics": True}}


def delivered_fact(raw, policy, replay_reasons):
    event = delivered_event(raw, policy, replay_reasons)
    return None if event is None else (event.visitor, IdentityFact.of(event))


def test_delivered_fact_follows_parsing_consent_and_replay_rules():
    policy = ConsentPolicy()
    ok = line(type="page", anonymousId="a", timestamp=1000, context={**GRANTED, "traits": {"plan": "pro"}})
    assert delivered_fact(RawInput(ok), policy, None) == ("a", IdentityFact(1000, {"plan": "pro"}, None, None))

    denied = line(type="identify", anonymousId="a", timestamp=1, traits={"x": 1},
                  context={"consent": {"analytics": False}})
    assert delivered_fact(RawInput(denied), policy, None) is None
    assert delivered_fact(RawInput(b"not json"), policy, None) is None
    assert delivered_fact(RawInput(line(type="group", anonymousId="a")), policy, None) is None
    dead_letter = line(reason="rejected", failed_at="2026-01-01T00:00:00Z",
                       event={"type": "page", "anonymousId": "a", "timestamp": 5, "context": GRANTED})
    assert delivered_fact(RawInput(dead_letter), policy, frozenset({"invalid"})) is None
    replayed = delivered_fact(RawInput(dead_letter), policy, frozenset({"rejected"}))
    assert replayed == ("a", IdentityFact(5, None, None, None))


def test_an_event_without_timestamp_takes_the_read_time_in_the_first_pass_too():
    undated = line(type="page", anonymousId="a", context=GRANTED, vendor_ids={"woopra_cookie": "C"})
    _, fact = delivered_fact(RawInput(undated, fallback_time_ms=1234), ConsentPolicy(), None)
    assert fact.at_ms == 1234
