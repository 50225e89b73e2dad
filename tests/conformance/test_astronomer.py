"""Astronomer's Woopra integration (a fork of Segment's cloud-mode one), case by case.

Source: ``astronomer-integrations/integration-woopra``, the fixtures under ``test/fixtures/``
(``identify-basic``, ``identify-cookie``, ``identify-date``, ``identify-nested``, ``track-basic``,
``track-cookie``, ``track-nested``), each an input message and the query it maps to, with the
integration's test settings (``domain: ivolo.me``). Each is translated by hand into our input: the
messages are Segment-shaped already; their ``timestamp: "2014"`` (which Segment's facade reads as
2014-01-01) is written ``2014-01-01T00:00:00Z``, the same moment. Where we differ, the case (or
``ASTRONOMER`` below) says which convention we follow and why; Woopra's own tracker wins ties
(docs/behaviour.md#beside-woopras-tracker).
"""

from __future__ import annotations

import pytest

from tests.conformance.support import ABSENT, Case, assert_conformance, assert_every_note_is_used

FIXTURES = "astronomer-integrations/integration-woopra test/fixtures"
WHEN, WHEN_MS = "2014-01-01T00:00:00Z", "1388534400000"
MD5_OF_USER_ID = "e35c1a36e525c2e4642c43b55246de30"  # the peer's cookie: md5("user-id")
JSON_OBJECTS = ("objects and arrays are sent as compact JSON, as Woopra's tracker sends them (it JSON-stringifies "
                "object values; docs/behaviour.md#woopra-mapping, Values); the peer writes objects as a query "
                "string (`a=1&b[c]=2`)")

# Differences every Astronomer case shares.
ASTRONOMER = {
    "host": "we send `project`, the name Woopra's tracker and HTTP API use; `host` is its legacy name",
    "cookie": ("a call with only a userId carries `cv_id` alone (docs/behaviour.md#identity), on which Woopra "
               "merges; the peer makes up a cookie, md5 of the user id, 32 characters (over the 24 Woopra keeps) "
               "and never the visitor's browser cookie"),
    "ua": ("we send the visitor's User-Agent as the request's User-Agent header, as a browser's call to Woopra "
           "does; the peer sends it as a `ua` parameter"),
    "context": ("the peer sends the message's `integrations` options as a JSON `context` parameter, which is no "
                "Woopra parameter; we do not"),
}


def identify(**fields):
    event = {"type": "identify", "userId": "user-id", "timestamp": WHEN,
             "context": {"ip": "0.0.0.0", "userAgent": "user-agent"}}
    event.update(fields)
    return event


def track(**fields):
    event = {"type": "track", "userId": "user-id", "event": "my-event", "timestamp": WHEN,
             "properties": {"revenue": 19.99, "property": True, "email": "name@example.com"}}
    event.update(fields)
    return event


PROPERTY_EMAIL = ("a property is the event's (`ce_email`), a trait the visitor's: an email in `properties` is not "
                  "known to be the visitor's (docs/behaviour.md#woopra-mapping, Names); the peer moves it to "
                  "`cv_email`")
REVENUE = ("the preset renames `revenue` to `amount` (docs/behaviour.md#woopra-mapping; the config's `properties:` "
           "can undo it); the peer keeps the name")
TRACK_NOTES = {"ce_revenue": REVENUE, "ce_amount": REVENUE, "cv_email": PROPERTY_EMAIL, "ce_email": PROPERTY_EMAIL}

CASES = [
    Case(
        name="identify-basic",
        source=f"{FIXTURES}/identify-basic.json",
        events=(identify(traits={"name": "john doe", "email": "name@example.com"}),),
        peer_endpoint="identify",
        peer={"cookie": MD5_OF_USER_ID, "cv_name": "john doe", "cv_id": "user-id", "cv_email": "name@example.com",
              "host": "ivolo.me", "ip": "0.0.0.0", "timeout": "30", "timestamp": WHEN_MS, "ua": "user-agent"},
        ours={"cv_name": "john doe", "cv_id": "user-id", "cv_email": "name@example.com", "ip": "0.0.0.0",
              "timestamp": WHEN_MS, "cookie": ABSENT},
    ),
    Case(
        name="identify-cookie",
        source=f"{FIXTURES}/identify-cookie.json",
        events=(identify(traits={"name": "john doe", "email": "name@example.com"},
                         integrations={"Woopra": {"cookie": "amyJ0K8meemG"}}),),
        peer_endpoint="identify",
        peer={"cookie": "amyJ0K8meemG", "cv_name": "john doe", "cv_id": "user-id", "cv_email": "name@example.com",
              "host": "ivolo.me", "ip": "0.0.0.0", "timeout": "30000",
              "context": '{"ip":"0.0.0.0","userAgent":"user-agent"}', "timestamp": WHEN_MS, "ua": "user-agent"},
        # Issue 21, item 4: integrations.Woopra.cookie is the cookie, as the peer sends it.
        ours={"cookie": "amyJ0K8meemG", "cv_name": "john doe", "cv_id": "user-id", "cv_email": "name@example.com"},
    ),
    Case(
        name="identify-date",
        source=f"{FIXTURES}/identify-date.json",
        events=(identify(traits={"testdate": "2015-11-04T09:20:22Z"}),),
        peer_endpoint="identify",
        peer={"cookie": MD5_OF_USER_ID, "cv_id": "user-id", "cv_testdate": "1446628822000", "host": "ivolo.me",
              "ip": "0.0.0.0", "timeout": "30000", "context": '{"ip":"0.0.0.0","userAgent":"user-agent"}',
              "timestamp": WHEN_MS, "ua": "user-agent"},
        ours={"cv_testdate": "2015-11-04T09:20:22Z"},
        differences={"cv_testdate": ("a trait is sent as it is (docs/behaviour.md#woopra-mapping, Values): our input "
                                     "is JSON, where a date is only text, and turning every text that looks like "
                                     "a date into a number would change values that are not dates; the peer "
                                     "converts ISO dates to Unix ms")},
    ),
    Case(
        name="identify-nested",
        source=f"{FIXTURES}/identify-nested.json",
        events=(identify(traits={"name": "john doe", "email": "name@example.com",
                                 "company_details": {"name": "Vandalay Industries", "employee-count": "1",
                                                     "location": {"state": "CA"}}}),),
        peer_endpoint="identify",
        peer={"cookie": MD5_OF_USER_ID, "cv_name": "john doe", "cv_id": "user-id", "cv_email": "name@example.com",
              "cv_company_details": "name=Vandalay Industries&employee-count=1&location[state]=CA",
              "host": "ivolo.me", "ip": "0.0.0.0", "timeout": "30000",
              "context": '{"ip":"0.0.0.0","userAgent":"user-agent"}', "timestamp": WHEN_MS, "ua": "user-agent"},
        ours={"cv_company_details": '{"name":"Vandalay Industries","employee-count":"1","location":{"state":"CA"}}'},
        differences={"cv_company_details": JSON_OBJECTS},
    ),
    Case(
        name="track-basic",
        source=f"{FIXTURES}/track-basic.json",
        events=(track(),),
        peer_endpoint="ce",
        peer={"event": "my-event", "ce_property": "true", "ce_revenue": "19.99", "cv_id": "user-id",
              "cv_email": "name@example.com", "host": "ivolo.me", "cookie": MD5_OF_USER_ID, "timeout": "30",
              "timestamp": WHEN_MS},
        ours={"event": "my-event", "ce_property": "true", "ce_amount": "19.99", "ce_email": "name@example.com",
              "cv_id": "user-id", "cv_email": ABSENT, "timestamp": WHEN_MS},
        differences=TRACK_NOTES,
    ),
    Case(
        name="track-cookie",
        source=f"{FIXTURES}/track-cookie.json",
        events=(track(context={"os": {"name": "iPhone OS", "version": "8.1.3"}, "ip": "127.0.0.1"},
                      integrations={"Woopra": {"cookie": "amyJ0K8meemG"}}),),
        peer_endpoint="ce",
        peer={"event": "my-event", "ce_property": "true", "ce_revenue": "19.99", "cv_id": "user-id",
              "cv_email": "name@example.com", "host": "ivolo.me", "cookie": "amyJ0K8meemG", "timeout": "30000",
              "context": '{"os":{"name":"iPhone OS","version":"8.1.3"},"ip":"127.0.0.1"}', "ip": "127.0.0.1",
              "timestamp": WHEN_MS},
        ours={"cookie": "amyJ0K8meemG", "ip": "127.0.0.1", "event": "my-event"},
        differences=TRACK_NOTES,
    ),
    Case(
        name="track-nested",
        source=f"{FIXTURES}/track-nested.json",
        events=(track(properties={"revenue": 19.99, "property": True, "message": {"name": "handles"},
                                  "products": [{"id": 7, "name": "Multi", "price": 7.95, "quantity": 1},
                                               {"id": 6, "name": "Single", "price": 1.95, "quantity": 2}]}),),
        peer_endpoint="ce",
        # The fixture's ce_message is an object the HTTP client writes as ce_message[name]=handles.
        peer={"cv_id": "user-id", "ce_name": "my-event", "ce_property": "true", "ce_revenue": "19.99",
              "ce_message[name]": "handles",
              "ce_products": ('[{"id":7,"name":"Multi","price":7.95,"quantity":1},'
                              '{"id":6,"name":"Single","price":1.95,"quantity":2}]'),
              "host": "ivolo.me", "cookie": MD5_OF_USER_ID, "timeout": "30", "timestamp": WHEN_MS},
        # ce_products: an array as compact JSON, as the peer sends it.
        ours={"event": "my-event", "ce_message": '{"name":"handles"}',
              "ce_products": ('[{"id":7,"name":"Multi","price":7.95,"quantity":1},'
                              '{"id":6,"name":"Single","price":1.95,"quantity":2}]')},
        differences={"ce_revenue": REVENUE, "ce_amount": REVENUE,
                     "ce_message[name]": JSON_OBJECTS, "ce_message": JSON_OBJECTS,
                     "ce_name": ("the event's name is `event`, as Woopra's HTTP API and tracker name it; this "
                                 "fixture's older mapper sent it as `ce_name`"),
                     "event": "as `ce_name`"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_astronomer_case(case):
    assert_conformance(case, ASTRONOMER)


def test_every_shared_note_explains_a_difference():
    assert_every_note_is_used(CASES, ASTRONOMER)


def test_the_visitors_user_agent_is_the_request_header():
    from tests.conformance.support import send

    (sent,) = send(CASES[0].events[0])
    assert sent.user_agent == "user-agent" and "ua" not in sent.params
