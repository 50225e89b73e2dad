"""Edgee's Woopra component, case by case (edgee-cloud/woopra-component).

Source: ``src/lib.rs``, its ``#[cfg(test)]`` module: the fixtures ``sample_context``,
``sample_page_data``, ``sample_track_data``, ``sample_user_data`` and the tests built on them
(``page_works_fine``, ``track_works_fine``, ``user_works_fine``,
``track_event_with_already_prefixed_properties``, ``user_event_with_already_prefixed_properties``,
and the ones that empty a field). Edgee's tests assert little of the query (``project=``, the
prefixes), so the peer's parameters below are what ``src/woopra_payload.rs`` builds from those
fixtures, read by hand. The translation into our input: Edgee's ``context.client`` is our
``context.ip``/``userAgent``/``locale``/``screen``, its ``context.user`` our ids and
``context.traits``, its ``context.campaign`` and ``context.page`` ours, its page or track data our
``properties``. Where we differ, the case (or ``EDGEE`` below) says which convention we follow and why;
Woopra's own tracker wins ties (docs/behaviour.md#beside-woopras-tracker).
"""

from __future__ import annotations

import pytest

from tests.conformance.support import ABSENT, PROJECT, Case, assert_conformance, assert_every_note_is_used
from transforms.rules.identity import fallback_cookie

LIB = "edgee-cloud/woopra-component src/lib.rs"
ANON, USER = "456", "123"
PAGE_URL = "https://example.com/full-url?test=1"
# Edgee's event time is 123 in its seconds field; ours is the same moment, in Unix ms.
WHEN, WHEN_MS = 123_000, "123000"
CAMPAIGN = {"name": "random", "source": "random", "medium": "random", "term": "random", "content": "random",
            "creative_format": "random", "marketing_tactic": "random"}
CONTEXT = {
    "ip": "192.168.0.1", "userAgent": "Chrome", "locale": "fr", "timezone": "CET",
    "screen": {"width": 1024, "height": 768, "density": 2.0},
    "os": {"name": "MacOS", "version": "latest"},
    "location": {"city": "Paris", "country": "FR"},
    "campaign": CAMPAIGN,
    "traits": {"prop1": "value1", "prop2": "10"},
    "page": {"name": "page name", "category": "category", "title": "page title", "url": PAGE_URL,
             "path": "/full-path", "search": "?test=1", "referrer": "https://example.com/another-page"},
}
PAGE_PROPERTIES = {"prop1": "value1", "prop2": "10", "currency": "USD"}
OUR_CAMPAIGN = {f"ce_campaign_{key}": "random" for key in ("name", "source", "medium", "term", "content")}

# Differences every Edgee case shares.
EDGEE = {
    "timestamp": ("we send the event time in Unix milliseconds, as Woopra's HTTP API takes it; Edgee sends its "
                  "seconds field (`timestamp` rather than `timestamp_millis`)"),
    "cookie": ("every call of an anonymousId carries the cookie derived from it (docs/behaviour.md#identity, "
               "issue 21 item 1), so the anonymous and identified calls are one profile, as Woopra's tracker "
               "sends its cookie on every call; Edgee sends no cookie"),
    "cv_id": ("`cv_id` is the user id on every call (docs/behaviour.md#identity); Edgee sends it on user calls "
              "only, and as `cv_user_id` elsewhere"),
    "cv_user_id": "as `cv_id`: the user id is `cv_id`, the identifier Woopra merges on",
    "cv_anonymous_id": ("the anonymousId reaches Woopra as the cookie derived from it, never as a visitor "
                        "property; Edgee sends it as `cv_anonymous_id`"),
    "cv_country": ("Woopra geolocates the `ip` we send, as for its tracker; Edgee sends its own geolocation's "
                   "country as a visitor property"),
    "app": ("Woopra's tracker sends `app` as the collector's name (`js-client`); ours is `ce_app` "
            "(documented contract); Edgee sends `app=Edgee`"),
    "browser": ("we forward the visitor's User-Agent header, from which Woopra derives the browser and OS, as for "
                "its tracker's calls; Edgee sends them as parameters too"),
    "os": "as `browser`",
    "cs_session_id": ("the job keeps no sessions: Woopra makes visits from the calls' times and `timeout`, as for "
                      "its tracker; Edgee sends its own session as visit properties"),
    "cs_session_count": "as `cs_session_id`",
    "ip": ("`ip` is the visitor's `context.ip` on every call (docs/behaviour.md#identity); Edgee sends none "
           "on user calls"),
}
for _key in OUR_CAMPAIGN:
    EDGEE[_key] = ("the campaign is sent as Woopra's tracker names it (issue 21, item 3; "
                   "docs/behaviour.md#campaigns); Edgee drops `context.campaign`")
PAGE_VIEW_FIELDS = {
    "ce_url": ("Woopra's tracker sends `url` as the path and query and `uri` as the full address (issue 21, "
               "item 2); Edgee sends no `url` and, as `uri`, the address with its search string appended "
               "a second time"),
    "ce_uri": "as `ce_url`",
    "ce_domain": "the tracker sends the page's host as `domain`; Edgee does not",
    "ce_search": "the page's search string, kept as an event property (docs/behaviour.md#woopra-mapping)",
    "ce_name": "the page's name, kept as an event property (docs/behaviour.md#woopra-mapping)",
}


def call(call_type, **fields):
    event = {"type": call_type, "anonymousId": ANON, "userId": USER, "timestamp": WHEN, "context": dict(CONTEXT)}
    event.update(fields)
    return event


EDGEE_VISITOR = {"cv_anonymous_id": ANON, "cv_user_id": USER, "cv_prop1": "value1", "cv_prop2": "10",
                 "cv_country": "FR"}
EDGEE_CLIENT = {"language": "fr", "screen": "1024x768", "browser": "abc", "os": "MacOS latest",
                "ip": "192.168.0.1", "app": "Edgee", "cs_session_id": "random", "cs_session_count": "2"}
EDGEE_PAGE = {"ce_title": "page title", "ce_uri": PAGE_URL + "?test=1", "referer": "https://example.com/another-page",
              "ce_page_prop1": "value1", "ce_page_prop2": "10", "ce_page_currency": "USD"}
VISIT_ON_IDENTIFY = ("`language` and `screen` go with every call, identify too, as Woopra's tracker sends them "
                     "with every request; Edgee sends them on page and track calls only")
PAGE_PROPERTY_NOTE = ("a page call's properties are event properties `ce_<key>`, as in Woopra's tracker; "
                      "Edgee prefixes them `ce_page_`")

CASES = [
    Case(
        name="page_works_fine",
        source=f"{LIB}, test page_works_fine (sample_page_event)",
        events=(call("page", name="page name", properties=PAGE_PROPERTIES),),
        peer_endpoint="ce",
        peer={"project": PROJECT, "event": "pv", "timestamp": "123", **EDGEE_VISITOR, **EDGEE_CLIENT, **EDGEE_PAGE},
        ours={"event": "pv", "timestamp": WHEN_MS, "cookie": fallback_cookie(ANON), "cv_id": USER,
              "cv_prop1": "value1", "cv_prop2": "10", "ce_url": "/full-url?test=1", "ce_uri": PAGE_URL,
              "ce_domain": "example.com", "ce_title": "page title", "referer": "https://example.com/another-page",
              "ce_prop1": "value1", "ce_prop2": "10", "ce_currency": "USD", "language": "fr", "screen": "1024x768",
              "ip": "192.168.0.1", **OUR_CAMPAIGN},
        differences={**PAGE_VIEW_FIELDS, "ce_page_prop1": PAGE_PROPERTY_NOTE, "ce_page_prop2": PAGE_PROPERTY_NOTE,
                     "ce_page_currency": PAGE_PROPERTY_NOTE, "ce_prop1": PAGE_PROPERTY_NOTE,
                     "ce_prop2": PAGE_PROPERTY_NOTE, "ce_currency": PAGE_PROPERTY_NOTE},
    ),
    Case(
        name="track_works_fine",
        source=f"{LIB}, test track_works_fine (sample_track_event)",
        events=(call("track", event="test_event", properties=PAGE_PROPERTIES),),
        peer_endpoint="ce",
        peer={"project": PROJECT, "event": "test_event", "timestamp": "123", **EDGEE_VISITOR, **EDGEE_CLIENT,
              **EDGEE_PAGE, "ce_prop1": "value1", "ce_prop2": "10", "ce_currency": "USD"},
        ours={"event": "test_event", "ce_prop1": "value1", "ce_prop2": "10", "ce_currency": "USD",
              "cookie": fallback_cookie(ANON), "cv_id": USER, "ce_title": ABSENT, "referer": ABSENT, **OUR_CAMPAIGN},
        differences={
            "ce_title": ("a track call carries no page-view parameters: its page's title, address and referrer "
                         "reach Woopra with that page's own view (docs/behaviour.md#woopra-mapping); Edgee adds "
                         "them to every track call"),
            "ce_uri": "as `ce_title`", "referer": "as `ce_title`",
            "ce_page_prop1": "as `ce_title`", "ce_page_prop2": "as `ce_title`", "ce_page_currency": "as `ce_title`",
        },
    ),
    Case(
        name="user_works_fine",
        source=f"{LIB}, test user_works_fine (sample_user_event, sample_user_data_without_properties)",
        events=(call("identify", context={**CONTEXT, "traits": {}}),),
        peer_endpoint="identify",
        peer={"project": PROJECT, "cv_id": USER, "cv_country": "FR"},
        ours={"cv_id": USER, "cookie": fallback_cookie(ANON), "timestamp": WHEN_MS, "ip": "192.168.0.1"},
        differences={"timestamp": ("we send the event time on identify calls too (a backfill's identify "
                                   "happened then); Edgee sends none"),
                     "language": VISIT_ON_IDENTIFY, "screen": VISIT_ON_IDENTIFY},
    ),
    Case(
        name="track_event_with_already_prefixed_properties",
        source=f"{LIB}, test track_event_with_already_prefixed_properties",
        events=(call("track", event="test_event", properties={"prop_name": "value1", "ce_prop_ok": "10"}),),
        peer_endpoint="ce",
        # The assertion of this test: ce_prop_name and ce_prop_ok, never ce_ce_prop_ok. We agree.
        peer={"project": PROJECT, "event": "test_event", "timestamp": "123", **EDGEE_VISITOR, **EDGEE_CLIENT,
              **EDGEE_PAGE, "ce_prop_name": "value1", "ce_prop_ok": "10"},
        ours={"ce_prop_name": "value1", "ce_prop_ok": "10", "ce_ce_prop_ok": ABSENT},
        differences={"ce_title": "a track call carries no page-view parameters (see track_works_fine)",
                     "ce_uri": "as `ce_title`", "referer": "as `ce_title`", "ce_page_prop1": "as `ce_title`",
                     "ce_page_prop2": "as `ce_title`", "ce_page_currency": "as `ce_title`"},
    ),
    Case(
        name="user_event_with_already_prefixed_properties",
        source=f"{LIB}, test user_event_with_already_prefixed_properties (sample_user_data_with_cv_properties)",
        events=(call("identify", traits={"prop_name": "value1", "cv_prop_ok": "10"},
                     context={**CONTEXT, "traits": {}}),),
        peer_endpoint="identify",
        # The assertion of this test: cv_prop_name and cv_prop_ok, never cv_cv_prop_ok. We agree.
        peer={"project": PROJECT, "cv_id": USER, "cv_country": "FR", "cv_prop_name": "value1", "cv_prop_ok": "10"},
        ours={"cv_prop_name": "value1", "cv_prop_ok": "10", "cv_cv_prop_ok": ABSENT, "cv_id": USER},
        differences={"timestamp": "we send the event time on identify calls too; Edgee sends none",
                     "language": VISIT_ON_IDENTIFY, "screen": VISIT_ON_IDENTIFY},
    ),
    Case(
        name="track_event_with_empty_properties, without os version/name, without user properties",
        source=(f"{LIB}, tests track_event_with_empty_properties, track_event_without_client_os_version, "
                "track_event_without_client_os_name, track_event_without_context_user_properties"),
        events=(call("track", event="test_event", properties={},
                     context={**CONTEXT, "os": {}, "traits": {}}),),
        peer_endpoint="ce",
        peer={"project": PROJECT, "event": "test_event", "timestamp": "123", "cv_anonymous_id": ANON,
              "cv_user_id": USER, "cv_country": "FR", "language": "fr", "screen": "1024x768", "browser": "abc",
              "ip": "192.168.0.1", "app": "Edgee", "cs_session_id": "random", "cs_session_count": "2",
              **EDGEE_PAGE},
        # Edgee's tests assert only that a request is built; so do we, and that nothing empty is sent.
        ours={"event": "test_event", "cv_id": USER, "os": ABSENT, "cv_prop1": ABSENT},
        differences={"ce_title": "a track call carries no page-view parameters (see track_works_fine)",
                     "ce_uri": "as `ce_title`", "referer": "as `ce_title`", "ce_page_prop1": "as `ce_title`",
                     "ce_page_prop2": "as `ce_title`", "ce_page_currency": "as `ce_title`"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_edgee_case(case):
    assert_conformance(case, EDGEE)


def test_every_shared_note_explains_a_difference():
    assert_every_note_is_used(CASES, EDGEE)
