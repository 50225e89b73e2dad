"""RudderStack's Woopra destination, case by case (rudderlabs/rudder-transformer).

Sources: ``test/integrations/destinations/woopra/processor/data.ts`` (5 cases) and
``test/integrations/destinations/woopra/router/data.ts`` (3 cases), each translated by hand into
our input: RudderStack's message is already Segment-shaped, so the translation keeps its fields
and drops RudderStack's envelope (``destination.Config``, ``metadata``). The peer's parameters are
written as the text they are on the wire. Where we differ, the case (or ``RUDDERSTACK`` below) says
which convention we follow and why; Woopra's own tracker wins ties (docs/behaviour.md#beside-woopras-tracker).
"""

from __future__ import annotations

import pytest

from tests.conformance.support import ABSENT, PROJECT, Case, assert_conformance, assert_every_note_is_used
from transforms.rules.identity import fallback_cookie

PROCESSOR = "rudderlabs/rudder-transformer test/integrations/destinations/woopra/processor/data.ts"
ROUTER = "rudderlabs/rudder-transformer test/integrations/destinations/woopra/router/data.ts"
ANON = "21e13f4bc7ceddad"
WHEN = "2020-09-29T14:50:29.907+05:30"
WHEN_MS = "1601371229907"
CHROME = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/86.0.4240.111 Safari/537.36")
DALVIK = "Dalvik/2.1.0 (Linux; U; Android 9; AOSP on IA Emulator Build/PSR1.180720.117)"
MOBILE = {"app": {"build": "4", "name": "RuddCDN"}, "os": {"name": "Android", "version": "9"},
          "device": {"id": "3f034872-5e28-45a1-9eda-ce22a3e36d1a", "name": "generic_x86_arm"},
          "timezone": "Asia/Kolkata"}

CONTEXT_TRAITS = ("`context.traits` are the visitor's traits on every call (docs/behaviour.md#input-events); "
                  "RudderStack reads only `traits` on identify")
LOWER_CASE = ("we follow our Names rule (docs/behaviour.md#woopra-mapping): trait names are lower-cased, so "
              "`Name` and `name` are one visitor property; RudderStack keeps the case and splits them")
# Differences every RudderStack case shares.
RUDDERSTACK = {
    "Project": "we send `project`, the name Woopra's tracker and HTTP API use; RudderStack capitalises it",
    "cookie": ("no Woopra cookie in the event: we send the cookie derived from the anonymousId "
               "(24 characters, docs/behaviour.md#identity), within the 24 characters Woopra keeps of a "
               "cookie; RudderStack sends the anonymousId itself, which Woopra trims when longer"),
    "os": ("we forward the visitor's User-Agent header, from which Woopra derives the OS and browser as for "
           "its own tracker's calls; RudderStack forwards no User-Agent and names them itself"),
    "browser": "as `os`: Woopra reads the browser from the User-Agent header we forward",
    "app": ("Woopra's tracker sends `app` as the name of the collector (`js-client`); ours is `ce_app` "
            "(documented contract); RudderStack puts the mobile app's name there, which we do not send"),
}


def identify(**changes):
    event = {"type": "identify", "anonymousId": ANON, "timestamp": WHEN,
             "messageId": "1601322811899-d9c7dd00-50dc-4364-95c8-e89423eb3cfb",
             "context": dict(MOBILE, traits={"anonymousId": ANON}, userAgent=CHROME)}
    event.update(changes)
    return event


CASES = [
    Case(
        name="processor: identify, projectName in the integrations object, no externalId",
        source=f"{PROCESSOR}, 'Create a new Visitor with projectName inside Integration Object and no externalId'",
        events=(identify(integrations={"woopra": {"projectName": "abc.com"}},
                         traits={"name": "Test Rudderlabs", "email": "test@r.com", "hasPurchased": "yes",
                                 "address": "H.No. abc Street PQRS ", "state": "Delhi", "title": "Mr"}),),
        peer_endpoint="identify",
        peer={"os": "Android", "app": "RuddCDN", "browser": "Chrome86.0.4240.111", "cookie": ANON,
              "Project": "abc.com", "cv_email": "test@r.com", "cv_name": "Test Rudderlabs", "cv_state": "Delhi",
              "cv_title": "Mr", "cv_hasPurchased": "yes", "timestamp": WHEN_MS,
              "cv_address": "H.No. abc Street PQRS "},
        ours={"project": PROJECT, "cookie": fallback_cookie(ANON), "cv_email": "test@r.com",
              "cv_name": "Test Rudderlabs", "cv_state": "Delhi", "cv_title": "Mr", "cv_haspurchased": "yes",
              "cv_address": "H.No. abc Street PQRS ", "cv_anonymousid": ANON, "timestamp": WHEN_MS,
              "Project": ABSENT, "os": ABSENT},
        differences={
            "project": ("one job sends to one Woopra project (--woopra_project); an event cannot move itself "
                        "to another project through `integrations.woopra.projectName`"),
            "cv_hasPurchased": LOWER_CASE, "cv_haspurchased": LOWER_CASE,
            "cv_anonymousid": CONTEXT_TRAITS,
        },
    ),
    Case(
        name="processor: track with an app build but no app name, woopraId in externalId",
        source=f"{PROCESSOR}, 'Send track event with app name but no app build and woopraid inside externalid'",
        events=({"type": "track", "event": "First Investment", "anonymousId": ANON, "timestamp": WHEN,
                 "channel": "mobile", "properties": {"currency": "EUR", "revenue": 20.37566},
                 "context": {"externalId": [{"type": "woopraId", "id": "abcd123451"}], "app": {"build": "4"},
                             "device": MOBILE["device"], "os": MOBILE["os"], "timezone": "Asia/Kolkata",
                             "library": {"name": "com.rudderstack.android.sdk.core", "version": "1.0.6"},
                             "traits": {"anonymousId": ANON, "customProp": "customValue"},
                             "userAgent": DALVIK}},),
        peer_endpoint="ce",
        peer={"os": "Android", "event": "First Investment", "cookie": "abcd123451", "Project": "int.com",
              "timestamp": WHEN_MS, "ce_currency": "EUR", "ce_revenue": "20.37566", "cv_customProp": "customValue",
              "cv_anonymousId": ANON},
        # Issue 21, item 4: the woopraId is the cookie, as RudderStack sends it.
        ours={"event": "First Investment", "cookie": "abcd123451", "timestamp": WHEN_MS, "ce_currency": "EUR",
              "ce_amount": "20.37566", "cv_customprop": "customValue", "cv_anonymousid": ANON},
        differences={
            "project": "one job sends to one Woopra project (--woopra_project), whatever the source's settings",
            "ce_revenue": ("the preset renames `revenue` to `amount` (docs/behaviour.md#woopra-mapping, the config's "
                           "`properties:` can undo it); RudderStack keeps the name"),
            "ce_amount": "as `ce_revenue`",
            "cv_customProp": LOWER_CASE, "cv_customprop": LOWER_CASE,
            "cv_anonymousId": LOWER_CASE, "cv_anonymousid": LOWER_CASE,
        },
    ),
    Case(
        name="processor: page with the project from the destination's config, no user id",
        source=f"{PROCESSOR}, 'Send Page event with projectName from Config and no cv_id sources'",
        events=({"type": "page", "name": "Home", "anonymousId": ANON, "timestamp": WHEN, "channel": "mobile",
                 "properties": {"title": "Home | RudderStack", "url": "http://www.rudderstack.com"},
                 "context": dict(MOBILE, page={"referrer": "google.com"}, traits={"customProp": "customValue"},
                                 userAgent=DALVIK)},),
        peer_endpoint="ce",
        peer={"os": "Android", "app": "RuddCDN", "event": "Viewed Home Page", "ce_url": "http://www.rudderstack.com",
              "timestamp": WHEN_MS, "Project": "abc.com", "ce_title": "Home | RudderStack",
              "cv_customProp": "customValue", "cookie": ANON, "ce_referrer": "google.com"},
        ours={"event": "pv", "ce_url": "/", "ce_uri": "http://www.rudderstack.com", "ce_domain": "www.rudderstack.com",
              "ce_title": "Home | RudderStack", "ce_name": "Home", "referer": "google.com",
              "cv_customprop": "customValue", "cookie": fallback_cookie(ANON), "ce_referrer": ABSENT},
        differences={
            "project": "one job sends to one Woopra project (--woopra_project)",
            "event": ("Woopra's tracker sends every page view as `pv` (the config's `events:` can rename `page`); "
                      "RudderStack names it `Viewed <name> Page`"),
            "ce_url": ("Woopra's tracker sends `url` as the path and query and `uri` as the full address "
                       "(issue 21, item 2); RudderStack sends the full address as `ce_url`"),
            "ce_uri": "as `ce_url`", "ce_domain": "the tracker sends the page's host as `domain`",
            "ce_name": "the page's name, kept as an event property (docs/behaviour.md#woopra-mapping)",
            "referer": ("Woopra's tracker sends the referrer as the visit's `referer`, from which Woopra reads the "
                        "visit's source; RudderStack sends it as an event property `ce_referrer`"),
            "ce_referrer": "as `referer`",
            "cv_customProp": LOWER_CASE, "cv_customprop": LOWER_CASE,
        },
    ),
    Case(
        name="processor: a group call is not sent",
        source=f"{PROCESSOR}, 'Unsupported Message Type'",
        events=({"type": "group", "anonymousId": ANON, "event": "First Investment", "channel": "mobile",
                 "integrations": {"woopra": "int.com"}},),
        peer={}, peer_refuses="400 Message type group is not supported",
        # Both send nothing; ours is counted `unsupported`, never an error (docs/behaviour.md#input-events).
        ours={"outcome": "unsupported"},
    ),
    Case(
        name="processor: a track call without an event name is not sent",
        source=f"{PROCESSOR}, 'Event Name Not Provided '",
        events=({"type": "track", "anonymousId": ANON, "channel": "mobile", "integrations": {"woopra": "int.com"}},),
        peer={}, peer_refuses="400 Event Name can not be empty",
        ours={"outcome": "invalid_event"},  # a dead letter, as RudderStack's 400
    ),
    Case(
        name="router: identify with a capitalised trait",
        source=f"{ROUTER}, 'Succesfull Idenitfy Call'",
        events=(identify(integrations={"woopra": {"projectName": "abc.com"}},
                         context=dict(MOBILE, traits={"anonymousId": ANON}, userAgent=DALVIK),
                         traits={"Name": "Test Rudderlabs", "email": "test@r.com", "hasPurchased": "yes",
                                 "address": "H.No. abc Street PQRS ", "state": "Delhi", "title": "Mr"}),),
        peer_endpoint="identify",
        peer={"os": "Android", "app": "RuddCDN", "cookie": ANON, "Project": "abc.com", "cv_email": "test@r.com",
              "cv_state": "Delhi", "cv_title": "Mr", "cv_hasPurchased": "yes", "cv_address": "H.No. abc Street PQRS ",
              "timestamp": WHEN_MS, "cv_Name": "Test Rudderlabs"},
        ours={"cv_name": "Test Rudderlabs", "cv_Name": ABSENT, "cv_email": "test@r.com", "timestamp": WHEN_MS,
              "cookie": fallback_cookie(ANON)},
        differences={
            "project": "one job sends to one Woopra project (--woopra_project)",
            "cv_Name": LOWER_CASE, "cv_name": LOWER_CASE,
            "cv_hasPurchased": LOWER_CASE, "cv_haspurchased": LOWER_CASE,
            "cv_anonymousid": CONTEXT_TRAITS,
        },
    ),
    Case(
        name="router: track without a woopraId",
        source=f"{ROUTER}, 'Successful Track Call '",
        events=({"type": "track", "event": "First Investment", "anonymousId": ANON, "timestamp": WHEN,
                 "channel": "mobile", "integrations": {"woopra": "int.com"},
                 "properties": {"currency": "EUR", "revenue": 20.37566},
                 "context": dict(MOBILE, userAgent=DALVIK,
                                 library={"name": "com.rudderstack.android.sdk.core", "version": "1.0.6"})},),
        peer_endpoint="ce",
        peer={"os": "Android", "app": "RuddCDN", "event": "First Investment", "Project": "int.com",
              "timestamp": WHEN_MS, "ce_revenue": "20.37566", "ce_currency": "EUR", "cookie": ANON},
        ours={"event": "First Investment", "ce_amount": "20.37566", "ce_currency": "EUR",
              "cookie": fallback_cookie(ANON)},
        differences={
            "project": "one job sends to one Woopra project (--woopra_project)",
            "ce_revenue": "the preset renames `revenue` to `amount` (docs/behaviour.md#woopra-mapping)",
            "ce_amount": "as `ce_revenue`",
        },
    ),
    Case(
        name="router: a group call is not sent",
        source=f"{ROUTER}, 'Unsupported Message Type'",
        events=({"type": "group", "anonymousId": ANON, "event": "First Investment", "channel": "mobile",
                 "integrations": {"woopra": "int.com"}},),
        peer={}, peer_refuses="400 Message type group is not supported",
        ours={"outcome": "unsupported"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_rudderstack_case(case):
    assert_conformance(case, RUDDERSTACK)


def test_rudderstack_sends_no_user_agent_we_send_the_visitors():
    """Not a parameter: RudderStack's requests carry no User-Agent header (its `headers: {}`); ours carry
    the visitor's, as a browser's request to Woopra does, so Woopra's browser and OS are the visitor's."""
    from tests.conformance.support import send

    (sent,) = send(CASES[0].events[0])
    assert sent.user_agent == CHROME


def test_every_shared_note_explains_a_difference():
    assert_every_note_is_used(CASES, RUDDERSTACK)
