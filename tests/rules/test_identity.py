"""Unit tests for transforms/rules/identity.py: what is remembered per visitor (docs/behaviour.md#identity)."""

from __future__ import annotations

import re

import pytest

from transforms.rules.events import Event, validate_event
from transforms.rules.identity import FALLBACK_COOKIE_LENGTH, VisitorIdentity, enrich, fallback_cookie
from transforms.rules.woopra_mapping import WoopraSettings, build_request

ANON = "f47ac10b-58cc-4372-a567-0d02b2c3d479"
NOW_MS = 1_900_000_000_000


def make(call_type, ts, anonymous_id=ANON, user_id=None, traits=None, context_traits=None, cookie=None,
         name="Product Viewed"):
    obj = {"type": call_type, "anonymousId": anonymous_id, "timestamp": ts}
    if anonymous_id is None:
        del obj["anonymousId"]
    if user_id is not None:
        obj["userId"] = user_id
    if call_type == "track":
        obj["event"] = name
    if traits is not None:
        obj["traits"] = traits
    if context_traits is not None:
        obj["context"] = {"traits": context_traits}
    if cookie is not None:
        obj["vendor_ids"] = {"woopra_cookie": cookie}
    event = validate_event(obj, now_ms=NOW_MS)
    assert isinstance(event, Event), event
    return event


def ts(second):
    return f"2026-03-02T09:00:{second:02d}.000Z"


# ----- remember / current_traits ------------------------------------------------------------

def test_remember_stores_identify_traits_user_id_cookie_and_last_seen():
    identity = VisitorIdentity()
    event = make("identify", ts(5), user_id="user-123", traits={"email": "a@x.com"}, cookie="C1")
    identity.remember(event)
    assert identity.current_traits() == {"email": "a@x.com"}
    assert identity.user_id == (event.timestamp_ms, "user-123")
    assert identity.cookie == (event.timestamp_ms, "C1")
    assert identity.last_seen_ms == event.timestamp_ms


def test_remember_ignores_top_level_traits_of_track_but_keeps_context_traits():
    identity = VisitorIdentity()
    identity.remember(make("track", ts(1), traits={"email": "no@x.com"}, context_traits={"plan": "pro"}))
    assert identity.current_traits() == {"plan": "pro"}


def test_remember_newest_by_event_time_wins_when_applied_out_of_order():
    identity = VisitorIdentity()
    identity.remember(make("identify", ts(30), user_id="u-new", traits={"name": "New", "plan": "pro"},
                           cookie="NEWCOOKIE"))
    identity.remember(make("identify", ts(10), user_id="u-old", traits={"name": "Old", "company": "Acme"},
                           cookie="OLDCOOKIE"))
    assert identity.current_traits() == {"name": "New", "plan": "pro", "company": "Acme"}
    assert identity.user_id[1] == "u-new"
    assert identity.cookie[1] == "NEWCOOKIE"
    assert identity.last_seen_ms == make("page", ts(30)).timestamp_ms


def test_remember_in_order_later_value_replaces_earlier():
    identity = VisitorIdentity()
    identity.remember(make("identify", ts(10), traits={"name": "Old"}))
    identity.remember(make("identify", ts(30), traits={"name": "New"}))
    assert identity.current_traits() == {"name": "New"}


def test_remember_same_event_time_last_applied_wins():
    identity = VisitorIdentity()
    identity.remember(make("identify", ts(10), traits={"name": "First"}))
    identity.remember(make("identify", ts(10), traits={"name": "Second"}))
    assert identity.current_traits() == {"name": "Second"}


# ----- enrich ------------------------------------------------------------------------------

def test_enrich_carries_identify_traits_forward_to_later_calls():
    identity = VisitorIdentity()
    enrich(make("identify", ts(1), user_id="user-123",
                traits={"email": "jane.doe@example.com", "name": "Jane Doe"}, cookie="C"), identity)
    later = enrich(make("track", ts(2), cookie="C"), identity)
    assert later.traits == {"email": "jane.doe@example.com", "name": "Jane Doe"}
    assert later.user_id == "user-123"  # cv_id from the remembered userId
    assert later.cookie == "C"


def test_enrich_newest_trait_wins_on_a_later_call_after_out_of_order_identifies():
    identity = VisitorIdentity()
    enrich(make("identify", ts(30), traits={"name": "New"}), identity)
    enrich(make("identify", ts(10), traits={"name": "Old"}), identity)
    later = enrich(make("track", ts(40)), identity)
    assert later.traits["name"] == "New"


def test_enrich_call_keeps_its_own_traits_for_itself():
    identity = VisitorIdentity()
    enrich(make("identify", ts(30), traits={"name": "New"}), identity)
    old_call = enrich(make("identify", ts(10), traits={"name": "Old"}), identity)
    assert old_call.traits["name"] == "Old"


def test_enrich_context_traits_on_track_are_remembered_and_sent():
    identity = VisitorIdentity()
    first = enrich(make("track", ts(1), context_traits={"plan": "pro"}, cookie="C"), identity)
    second = enrich(make("page", ts(2), cookie="C"), identity)
    assert first.traits == {"plan": "pro"}
    assert second.traits == {"plan": "pro"}


def test_enrich_carries_remembered_cookie_to_calls_without_one():
    identity = VisitorIdentity()
    enrich(make("page", ts(1), cookie="AH47DHS5SF182DIQZJD"), identity)
    later = enrich(make("track", ts(2)), identity)
    assert later.cookie == "AH47DHS5SF182DIQZJD"


def test_enrich_own_cookie_wins_for_the_call():
    identity = VisitorIdentity()
    enrich(make("page", ts(5), cookie="NEWER"), identity)
    call = enrich(make("page", ts(1), cookie="OLDER"), identity)
    assert call.cookie == "OLDER"
    assert enrich(make("page", ts(9)), identity).cookie == "NEWER"


def test_enrich_does_not_mutate_the_input_event():
    identity = VisitorIdentity()
    event = make("identify", ts(1), traits={"email": "a@x.com"})
    enriched = enrich(event, identity)
    assert event.traits == {}
    assert enriched is not event
    assert enriched.original is event.original


def test_enrich_user_id_only_visitor_gets_cv_id_and_no_fallback_cookie():
    identity = VisitorIdentity()
    call = enrich(make("track", ts(1), anonymous_id=None, user_id="user-9"), identity)
    assert call.visitor == "user-9"
    assert call.user_id == "user-9"
    assert call.cookie is None


# ----- derived cookie (docs/behaviour.md#identity, issue 21 item 1) ---------------------------

def test_fallback_cookie_when_no_cookie_at_all():
    call = enrich(make("page", ts(1)), VisitorIdentity())
    assert call.cookie == fallback_cookie(ANON)
    assert call.cookie is not None and 0 < len(call.cookie) <= 24


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user_id": "user-1"},
        {"context_traits": {"email": "a@x.com"}},
        {"traits": {"email": "a@x.com"}},
    ],
    ids=["user-id", "email", "identify-email"],
)
def test_identified_calls_of_an_anonymous_id_carry_the_same_derived_cookie(kwargs):
    call_type = "identify" if "traits" in kwargs else "page"
    call = enrich(make(call_type, ts(1), **kwargs), VisitorIdentity())
    assert call.cookie == fallback_cookie(ANON)


def test_a_vendor_cookie_wins_over_the_derived_one():
    call = enrich(make("page", ts(1), user_id="user-1", cookie="REALCOOKIE"), VisitorIdentity())
    assert call.cookie == "REALCOOKIE"


def test_anonymous_page_identify_purchase_are_stitched_by_one_cookie():
    """The issue's story: a page view with only an anonymousId, then an identify with an email,
    then a purchase. Every request carries the same derived cookie, so the identified calls tie
    the anonymous history to cv_id/cv_email."""
    identity = VisitorIdentity()
    page = enrich(make("page", ts(1)), identity)
    identify = enrich(make("identify", ts(2), user_id="user-1", traits={"email": "jane@example.com"}), identity)
    purchase = enrich(make("track", ts(3), user_id="user-1", name="Order Completed"), identity)
    settings = WoopraSettings(project="p")
    sent = [dict(build_request(call, settings, now_ms=NOW_MS).params) for call in (page, identify, purchase)]
    assert {params["cookie"] for params in sent} == {fallback_cookie(ANON)}
    assert sent[1]["cv_email"] == sent[2]["cv_email"] == "jane@example.com"
    assert sent[1]["cv_id"] == sent[2]["cv_id"] == "user-1"


def test_the_derived_cookie_stays_when_the_email_was_remembered_earlier():
    identity = VisitorIdentity()
    enrich(make("identify", ts(1), traits={"email": "a@x.com"}), identity)
    later = enrich(make("track", ts(2)), identity)
    assert later.cookie == fallback_cookie(ANON)
    assert later.traits["email"] == "a@x.com"


def test_user_id_only_calls_keep_cv_id_alone():
    identity = VisitorIdentity()
    call = enrich(make("identify", ts(1), anonymous_id=None, user_id="user-9", traits={"email": "a@x.com"}), identity)
    assert call.cookie is None and call.user_id == "user-9"


@pytest.mark.parametrize("anonymous_id", ["", "   "])
def test_a_blank_anonymous_id_derives_no_cookie(anonymous_id):
    call = enrich(make("page", ts(1), anonymous_id=anonymous_id, user_id="user-1"), VisitorIdentity())
    assert call.cookie is None


def test_numeric_anonymous_id_derives_from_its_text():
    call = enrich(make("page", ts(1), anonymous_id=12345), VisitorIdentity())
    assert call.cookie == fallback_cookie("12345")


@pytest.mark.parametrize("fields", [
    {"context": {"externalId": [{"type": "woopraId", "id": "PEERCOOKIE"}]}},
    {"integrations": {"Woopra": {"cookie": "PEERCOOKIE"}}},
], ids=["rudderstack-external-id", "segment-integrations"])
def test_a_peers_cookie_is_used_and_remembered_instead_of_a_derived_one(fields):
    """Issue 21, item 4: a backfill from another collector's export keeps its browser cookie."""
    first = make("page", ts(1))
    first.original.update(fields)
    identity = VisitorIdentity()
    assert enrich(first, identity).cookie == "PEERCOOKIE"
    assert enrich(make("track", ts(2), user_id="user-1"), identity).cookie == "PEERCOOKIE"


@pytest.mark.parametrize("anonymous_id", [ANON, "x", "", "ü" * 500, "a" * 10_000])
def test_fallback_cookie_is_deterministic_and_at_most_24_chars(anonymous_id):
    cookie = fallback_cookie(anonymous_id)
    assert cookie == fallback_cookie(anonymous_id)
    assert 0 < len(cookie) <= FALLBACK_COOKIE_LENGTH <= 24
    assert re.fullmatch(r"[0-9A-Za-z]+", cookie)


def test_fallback_cookie_differs_between_visitors():
    cookies = {fallback_cookie(f"anon-{i}") for i in range(500)}
    assert len(cookies) == 500


def test_fallback_cookie_stable_across_calls_of_one_visitor():
    identity = VisitorIdentity()
    first = enrich(make("page", ts(1)), identity)
    second = enrich(make("track", ts(2)), identity)
    assert first.cookie == second.cookie == fallback_cookie(ANON)


def test_capitalised_email_trait_is_sent_as_cv_email_beside_the_derived_cookie():
    call = enrich(make("identify", ts(1), traits={"Email": "jane@example.com"}), VisitorIdentity())
    request = build_request(call, WoopraSettings(project="p"), now_ms=NOW_MS)
    assert dict(request.params)["cv_email"] == "jane@example.com"
    assert call.cookie == fallback_cookie(ANON)
