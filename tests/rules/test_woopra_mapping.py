"""Unit tests for transforms/rules/woopra_mapping.py: one enriched event → one Woopra request.

The rules: docs/behaviour.md#woopra-mapping and #privacy.
"""

from __future__ import annotations

import copy
import math
from urllib.parse import parse_qsl, urlsplit

import pytest

from transforms.rules.events import Event, validate_event
from transforms.rules.identity import VisitorIdentity, enrich, fallback_cookie
from transforms.rules.woopra_mapping import (
    MAX_URL_BYTES,
    PRESET_EVENTS,
    Skipped,
    WoopraRequest,
    WoopraSettings,
    _property_parameter,
    _trait_parameter,
    build_request,
    clean_header_value,
    fit_url,
    format_value,
)

ANON = "f47ac10b-58cc-4372-a567-0d02b2c3d479"
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36"
NOW_MS = 1_900_000_000_000
SETTINGS = WoopraSettings(project="mywebsite.com")

SEED_IDENTIFY = {
    "type": "identify",
    "messageId": "0b6e4f5c-9d2a-4c7e-8f11-2a3b4c5d6e01",
    "anonymousId": ANON,
    "userId": "user-123",
    "timestamp": "2026-03-02T09:18:05.000Z",
    "traits": {"email": "jane.doe@example.com", "name": "Jane Doe", "company": "Acme Ltd"},
    "context": {"ip": "203.0.113.50", "userAgent": UA},
    "vendor_ids": {"woopra_cookie": "AH47DHS5SF182DIQZJD"},
}
SEED_TRACK = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "0b6e4f5c-9d2a-4c7e-8f11-2a3b4c5d6e02",
    "anonymousId": ANON,
    "userId": "user-123",
    "timestamp": "2026-03-02T09:21:47.005Z",
    "properties": {"order_id": "ORD-001", "revenue": 149.95, "currency": "USD", "coupon": "WELCOME10"},
    "traits": {},
    "context": {
        "ip": "203.0.113.50",
        "userAgent": UA,
        "page": {"url": "https://shop.example.com/checkout", "path": "/checkout",
                 "title": "Checkout", "referrer": "https://www.google.com/"},
        "consent": {"analytics": True, "marketing": False},
    },
    "vendor_ids": {"woopra_cookie": "AH47DHS5SF182DIQZJD"},
}


def event_of(obj: dict, identity: VisitorIdentity | None = None) -> Event:
    event = validate_event(copy.deepcopy(obj), now_ms=NOW_MS)
    assert isinstance(event, Event), event
    return enrich(event, identity if identity is not None else VisitorIdentity())


def track(name="Order Completed", properties=None, **extra):
    obj = {"type": "track", "event": name, "anonymousId": ANON, "timestamp": "2026-03-02T09:21:47.005Z",
           "properties": properties if properties is not None else {},
           "context": {"ip": "203.0.113.50", "userAgent": UA},
           "vendor_ids": {"woopra_cookie": "COOKIE1"}}
    obj.update(extra)
    return obj


def request_of(obj, settings=SETTINGS, now_ms=NOW_MS, identity=None):
    result = build_request(event_of(obj, identity), settings, now_ms=now_ms)
    assert isinstance(result, WoopraRequest), result
    return result


def params_of(obj, settings=SETTINGS, **kwargs) -> dict[str, str]:
    request = request_of(obj, settings, **kwargs)
    params = dict(request.params)
    assert len(params) == len(request.params), "a parameter appears twice"
    return params


# ----- the documented purchase example, parameter by parameter ----------------------------------

@pytest.fixture
def seed_request() -> WoopraRequest:
    identity = VisitorIdentity()
    identify = build_request(event_of(SEED_IDENTIFY, identity), SETTINGS, now_ms=NOW_MS)
    assert isinstance(identify, WoopraRequest)
    return request_of(SEED_TRACK, identity=identity)


@pytest.mark.parametrize(
    "key, value",
    [
        ("project", "mywebsite.com"),
        ("response", "json"),
        ("timeout", "1800000"),
        ("ce_app", "datafly-signal"),
        ("event", "purchase"),
        ("cookie", "AH47DHS5SF182DIQZJD"),
        ("ip", "203.0.113.50"),
        ("cv_email", "jane.doe@example.com"),
        ("cv_name", "Jane Doe"),
        ("ce_order_id", "ORD-001"),
        ("ce_amount", "149.95"),
        ("ce_currency", "USD"),
        ("ce_coupon", "WELCOME10"),
    ],
)
def test_seed_purchase_example_parameter(seed_request, key, value):
    assert dict(seed_request.params)[key] == value


def test_seed_purchase_example_request_line_and_header(seed_request):
    params = dict(seed_request.params)
    assert seed_request.url == "https://www.woopra.com/track/ce/"
    assert seed_request.headers == {"User-Agent": UA}
    assert params["cv_id"] == "user-123"
    assert params["cv_company"] == "Acme Ltd"
    assert params["timestamp"] == "1772443307005"
    assert "ce_revenue" not in params
    assert "cv_name=Jane+Doe" in seed_request.full_url()
    assert "ce_amount=149.95&" in seed_request.full_url() + "&"


def test_seed_identify_goes_to_identify_endpoint_without_event_or_properties():
    request = build_request(event_of(SEED_IDENTIFY), SETTINGS, now_ms=NOW_MS)
    params = dict(request.params)
    assert request.url == "https://www.woopra.com/track/identify/"
    assert "event" not in params
    assert {k: params[k] for k in ("project", "response", "timeout", "ce_app", "cookie", "ip")} == {
        "project": "mywebsite.com", "response": "json", "timeout": "1800000", "ce_app": "datafly-signal",
        "cookie": "AH47DHS5SF182DIQZJD", "ip": "203.0.113.50"}
    assert params["cv_email"] == "jane.doe@example.com"
    assert params["cv_name"] == "Jane Doe"
    assert params["cv_company"] == "Acme Ltd"
    assert params["cv_id"] == "user-123"
    assert [k for k in params if k.startswith("ce_")] == ["ce_app"]
    assert request.headers == {"User-Agent": UA}


def test_identify_ignores_properties():
    obj = dict(SEED_IDENTIFY, properties={"plan": "pro"})
    assert "ce_plan" not in params_of(obj)


# ----- event names ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "signal_event, woopra_event",
    [
        ("Signed Up", "signup"),
        ("Logged In", "login"),
        ("Products Searched", "search"),
        ("Product Viewed", "product_viewed"),
        ("Plan Viewed", "plan_viewed"),
        ("Product Added", "add_to_cart"),
        ("Checkout Started", "checkout_started"),
        ("Order Completed", "purchase"),
        ("Subscription Started", "subscription_started"),
        ("Lead Generated", "lead"),
    ],
)
def test_preset_event_table(signal_event, woopra_event):
    request = request_of(track(signal_event))
    assert request.url.endswith("/ce/")
    assert dict(request.params)["event"] == woopra_event


def test_preset_table_has_exactly_the_seed_rows():
    assert len(PRESET_EVENTS) == 10


@pytest.mark.parametrize("name", [None, "Home", "Checkout"])
def test_any_page_call_is_pv(name):
    obj = {"type": "page", "anonymousId": ANON, "vendor_ids": {"woopra_cookie": "C"}}
    if name:
        obj["name"] = name
    request = request_of(obj)
    assert request.url == "https://www.woopra.com/track/ce/"
    assert dict(request.params)["event"] == "pv"


def test_unmapped_track_event_is_sent_under_its_own_name_by_default():
    assert dict(request_of(track("Video Played")).params)["event"] == "Video Played"


def test_unmapped_track_event_is_dropped_when_configured():
    settings = WoopraSettings(project="p", unmapped_events="drop")
    result = build_request(event_of(track("Video Played")), settings, now_ms=NOW_MS)
    assert isinstance(result, Skipped)
    assert result.reason == "dropped_unmapped"
    # mapped events and page calls are still sent in drop mode
    assert dict(request_of(track("Order Completed"), settings).params)["event"] == "purchase"
    page = {"type": "page", "anonymousId": ANON}
    assert dict(request_of(page, settings).params)["event"] == "pv"


def test_config_events_extend_and_override_the_preset():
    settings = WoopraSettings(project="p", events={**PRESET_EVENTS, "Trial Started": "trial_started",
                                                  "Order Completed": "order"})
    assert dict(request_of(track("Trial Started"), settings).params)["event"] == "trial_started"
    assert dict(request_of(track("Order Completed"), settings).params)["event"] == "order"
    assert dict(request_of(track("Signed Up"), settings).params)["event"] == "signup"


# ----- parameters every request carries ---------------------------------------------------

def test_settings_project_endpoint_timeout_app_are_used():
    settings = WoopraSettings(project="example.org", endpoint="http://127.0.0.1:8080/track/",
                              timeout_ms=60000, app="my-app")
    request = request_of(track(), settings)
    params = dict(request.params)
    assert request.url == "http://127.0.0.1:8080/track/ce/"
    assert (params["project"], params["timeout"], params["ce_app"]) == ("example.org", "60000", "my-app")


def test_timestamp_is_event_time_in_ms():
    assert params_of(track())["timestamp"] == "1772443307005"


def test_timestamp_is_never_in_the_future():
    future = track(timestamp="2099-01-01T00:00:00Z")
    assert params_of(future, now_ms=NOW_MS)["timestamp"] == str(NOW_MS)


def test_ip_is_the_visitors_context_ip_and_omitted_when_unknown():
    assert params_of(track())["ip"] == "203.0.113.50"
    no_ip = track(context={"userAgent": UA})
    assert "ip" not in params_of(no_ip)


def test_derived_cookie_beside_the_email_when_the_visitor_has_no_woopra_cookie():
    obj = track(context={"traits": {"email": "a@x.com"}})
    del obj["vendor_ids"]
    params = params_of(obj)
    assert params["cookie"] == fallback_cookie(obj["anonymousId"])  # ties the anonymous history to the email
    assert params["cv_email"] == "a@x.com"


def test_no_cookie_param_for_a_user_id_only_call():
    obj = track(userId="user-9")
    del obj["vendor_ids"], obj["anonymousId"]
    params = params_of(obj)
    assert "cookie" not in params and params["cv_id"] == "user-9"


def test_anonymous_visitor_without_cookie_gets_a_stable_fallback_cookie():
    obj = track()
    del obj["vendor_ids"]
    first = params_of(obj)["cookie"]
    again = params_of(obj)["cookie"]
    assert first == again
    assert 0 < len(first) <= 24


# ----- properties, traits, prefixes -------------------------------------------------------

@pytest.mark.parametrize(
    "key, expected",
    [
        ("order_id", "ce_order_id"),
        ("ce_custom", "ce_custom"),
        ("cv_plan", "cv_plan"),
        ("cs_source", "cs_source"),
        ("CamelKey", "ce_CamelKey"),
        ("revenue", "ce_amount"),
    ],
)
def test_event_property_prefixing(key, expected):
    params = params_of(track(properties={key: "v"}))
    assert params[expected] == "v"


@pytest.mark.parametrize(
    "key, expected",
    [
        ("email", "cv_email"),
        ("Company", "cv_company"),
        ("FIRST_NAME", "cv_first_name"),
        ("cv_plan", "cv_plan"),
        ("ce_thing", "ce_thing"),
        ("cs_x", "cs_x"),
    ],
)
def test_trait_prefixing_and_lowercasing(key, expected):
    obj = dict(SEED_IDENTIFY, traits={key: "v"})
    assert params_of(obj)[expected] == "v"


@pytest.mark.parametrize(
    "key, prefix, lowercase, expected",
    [
        ("x", "ce_", False, "ce_x"),
        ("ce_x", "ce_", False, "ce_x"),
        ("cv_x", "ce_", False, "cv_x"),
        ("cs_x", "cv_", True, "cs_x"),
        ("Name", "cv_", True, "cv_name"),
        ("Name", "ce_", False, "ce_Name"),
        ("cex", "ce_", False, "ce_cex"),
    ],
)
def test_parameter_names(key, prefix, lowercase, expected):
    """Traits (lower-cased, cv_) and properties (ce_) keep a Woopra prefix they already carry."""
    name_of = _trait_parameter if prefix == "cv_" else _property_parameter
    assert lowercase == (prefix == "cv_")
    assert name_of(key, renames={}) == expected


def test_property_and_trait_renames_apply_before_prefixing():
    settings = WoopraSettings(project="p", property_renames={"revenue": "amount", "price": "unit_price"},
                              trait_renames={"full_name": "name"})
    identity = VisitorIdentity()
    request_of(dict(SEED_IDENTIFY, traits={"full_name": "Jane Doe"}), settings, identity=identity)
    params = params_of(track(properties={"revenue": 10, "price": 2.5, "sku": "S"}), settings, identity=identity)
    assert params["ce_amount"] == "10"
    assert params["ce_unit_price"] == "2.5"
    assert params["ce_sku"] == "S"
    assert params["cv_name"] == "Jane Doe"
    assert "cv_full_name" not in params and "ce_revenue" not in params and "ce_price" not in params


@pytest.mark.parametrize("top", ["project", "response", "timeout", "event", "cookie", "ip", "timestamp", "referer"])
def test_no_custom_property_overwrites_a_top_level_param(top):
    params = params_of(track(properties={top: "EVIL"}))
    assert params[f"ce_{top}"] == "EVIL"
    assert params.get(top) != "EVIL"


def test_no_trait_overwrites_a_top_level_param():
    traits = {"ip": "10.0.0.1", "cookie": "EVIL", "project": "evil.com", "event": "evil", "timestamp": 1}
    params = params_of(dict(SEED_IDENTIFY, traits=traits))
    assert params["cv_ip"] == "10.0.0.1"
    assert params["ip"] == "203.0.113.50"
    assert params["cv_cookie"] == "EVIL"
    assert params["cookie"] == "AH47DHS5SF182DIQZJD"
    assert params["project"] == "mywebsite.com"
    assert params["cv_project"] == "evil.com"
    assert "event" not in params


def test_already_prefixed_property_cannot_replace_ce_app():
    params = params_of(track(properties={"ce_app": "evil", "app": "evil2"}))
    assert params["ce_app"] == "datafly-signal"


def test_trait_named_id_does_not_replace_cv_id_from_user_id():
    obj = dict(SEED_IDENTIFY, traits={"id": "crm-9", "email": "jane.doe@example.com"})
    assert params_of(obj)["cv_id"] == "user-123"


def test_null_nan_values_are_omitted_and_objects_are_compact_json():
    props = {"a": None, "b": float("nan"), "c": {"x": 1, "y": [1, "é"]}, "d": [1, 2], "e": True, "f": False}
    params = params_of(track(properties=props))
    assert "ce_a" not in params and "ce_b" not in params
    assert params["ce_c"] == '{"x":1,"y":[1,"é"]}'
    assert params["ce_d"] == "[1,2]"
    assert (params["ce_e"], params["ce_f"]) == ("true", "false")


# ----- format_value -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "value, expected",
    [
        ("plain text", "plain text"),
        ("", ""),
        ("ünï €", "ünï €"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (42, "42"),
        (-7, "-7"),
        (12345678901234567890123, "12345678901234567890123"),
        (149.95, "149.95"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (1e20, "100000000000000000000"),
        (-1e20, "-100000000000000000000"),
        (1.5e-7, "0.00000015"),
        (1e-5, "0.00001"),
        (2.0, "2"),
        (1e16, "10000000000000000"),
        (1234567.0, "1234567"),
        (1.5e300, "15" + "0" * 299),
        (None, None),
        (float("nan"), None),
        (float("inf"), None),
        (float("-inf"), None),
        ({"b": 1, "a": "x"}, '{"b":1,"a":"x"}'),
        ([1, "two", None, True], '[1,"two",null,true]'),
        ({}, "{}"),
        ([], "[]"),
    ],
)
def test_format_value(value, expected):
    assert format_value(value) == expected


@pytest.mark.parametrize("value", [149.95, 1e20, 1.5e-7, 3.0e-12, 6.02214076e23, 123456.789, 1 / 3])
def test_format_value_floats_are_plain_decimals_that_round_trip(value):
    text = format_value(value)
    assert "e" not in text.lower()
    assert float(text) == value


# ----- page calls -------------------------------------------------------------------------

PAGE = {
    "type": "page", "name": "Checkout", "anonymousId": ANON, "timestamp": "2026-03-02T09:15:02.120Z",
    "properties": {"category": "shop"},
    "context": {"ip": "203.0.113.50", "userAgent": UA,
                "page": {"url": "https://shop.example.com/checkout?step=2", "path": "/checkout",
                         "title": "Checkout", "referrer": "https://www.google.com/", "search": "?step=2"}},
    "vendor_ids": {"woopra_cookie": "AH47DHS5SF182DIQZJD"},
}


def test_page_fields_from_context_page():
    params = params_of(PAGE)
    assert params["event"] == "pv"
    # As Woopra's tracker (docs/behaviour.md#woopra-mapping): url = path + query, uri = the full address.
    assert params["ce_url"] == "/checkout?step=2"
    assert params["ce_title"] == "Checkout"
    assert params["ce_uri"] == "https://shop.example.com/checkout?step=2"
    assert params["ce_domain"] == "shop.example.com"
    assert params["referer"] == "https://www.google.com/"
    assert params["ce_category"] == "shop"
    assert "ce_referrer" not in params and "ce_path" not in params


def test_page_fields_from_properties_only():
    obj = {"type": "page", "anonymousId": ANON,
           "properties": {"url": "https://docs.example.org/a/b", "path": "/a/b", "title": "Docs",
                          "referrer": "https://ref.example/"}}
    params = params_of(obj)
    assert params["ce_url"] == "/a/b"
    assert params["ce_uri"] == "https://docs.example.org/a/b"
    assert params["ce_title"] == "Docs"
    assert params["ce_domain"] == "docs.example.org"
    assert params["referer"] == "https://ref.example/"
    assert "ce_referrer" not in params


def test_page_properties_override_context_page():
    obj = copy.deepcopy(PAGE)
    obj["properties"] = {"url": "https://other.example.net/x", "title": "Other", "path": None}
    params = params_of(obj)
    assert params["ce_uri"] == "https://other.example.net/x"
    assert params["ce_url"] == "/x"  # the path of the address sent, not context.page.path
    assert params["ce_domain"] == "other.example.net"
    assert params["ce_title"] == "Other"


def test_a_null_property_does_not_erase_context_page():
    obj = copy.deepcopy(PAGE)
    obj["properties"] = {"url": None, "title": None}
    params = params_of(obj)
    assert params["ce_uri"] == "https://shop.example.com/checkout?step=2" and params["ce_title"] == "Checkout"


@pytest.mark.parametrize(
    "page, expected",
    [
        ({"url": "https://s.example/a/b?x=1&y=2#top"}, ("/a/b?x=1&y=2", "https://s.example/a/b?x=1&y=2#top",
                                                       "s.example")),
        ({"url": "https://s.example"}, ("/", "https://s.example", "s.example")),
        ({"url": "https://s.example/p", "path": "/other"}, ("/p", "https://s.example/p", "s.example")),
        ({"path": "/p", "search": "?q=1"}, ("/p?q=1", None, None)),
        ({"path": "/p", "search": "q=1"}, ("/p?q=1", None, None)),
        ({"path": "/p", "search": ""}, ("/p", None, None)),
        ({"url": "/rel?q=1"}, ("/rel?q=1", None, None)),
        ({"url": "http://[::1", "path": "/p"}, ("/p", None, None)),
        ({"title": "no address"}, (None, None, None)),
    ],
    ids=["full", "host-only", "url-wins-over-path", "path-search", "search-without-mark", "empty-search",
         "relative-url", "bad-url", "none"],
)
def test_page_address_url_uri_domain_as_the_tracker(page, expected):
    obj = {"type": "page", "anonymousId": ANON, "context": {"page": page}}
    params = params_of(obj)
    assert (params.get("ce_url"), params.get("ce_uri"), params.get("ce_domain")) == expected


def test_page_without_referrer_has_no_referer_param():
    obj = copy.deepcopy(PAGE)
    obj["context"]["page"]["referrer"] = ""
    assert "referer" not in params_of(obj)


def test_track_call_has_no_page_view_params():
    params = params_of(SEED_TRACK)
    assert "referer" not in params
    assert "ce_url" not in params and "ce_domain" not in params


# ----- User-Agent ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "agent, expected",
    [
        ("Mozilla/5.0 (X11)", "Mozilla/5.0 (X11)"),
        ("Mozilla/5.0\r\nX-Injected: 1", "Mozilla/5.0 X-Injected: 1"),
        ("Mozilla/5.0\nEvil", "Mozilla/5.0 Evil"),
        ("Mozilla/5.0\rEvil", "Mozilla/5.0 Evil"),
        ("\r\nMozilla\x00/5.0\t\r\n", "Mozilla /5.0"),
    ],
)
def test_user_agent_header_is_cleaned_of_cr_lf(agent, expected):
    obj = track(context={"ip": "203.0.113.50", "userAgent": agent})
    request = request_of(obj)
    header = request.headers["User-Agent"]
    assert "\r" not in header and "\n" not in header
    assert header == expected
    assert clean_header_value(agent) == expected


@pytest.mark.parametrize("agent", [None, "", "\r\n"])
def test_no_user_agent_header_when_visitor_has_none(agent):
    context = {"ip": "203.0.113.50"}
    if agent is not None:
        context["userAgent"] = agent
    assert request_of(track(context=context)).headers == {}


def test_as_record_has_method_url_params_headers():
    request = request_of(SEED_TRACK)
    record = request.as_record()
    assert record["method"] == "GET"
    assert record["url"] == "https://www.woopra.com/track/ce/"
    assert record["params"]["event"] == "purchase"
    assert record["headers"] == {"User-Agent": UA}


def test_full_url_encodes_reserved_characters():
    request = request_of(track(properties={"q": "a b&c=d", "u": "é/?#"}))
    query = urlsplit(request.full_url()).query
    assert " " not in query and "#" not in query
    decoded = dict(parse_qsl(query))
    assert decoded["ce_q"] == "a b&c=d"
    assert decoded["ce_u"] == "é/?#"


# ----- URL length (docs/behaviour.md#privacy) ---------------------------------------------------------------

def assert_fits(request):
    assert isinstance(request, WoopraRequest), request
    assert len(request.full_url().encode("utf-8")) <= MAX_URL_BYTES


def test_long_property_is_cut_to_keep_url_within_8_kib():
    long_value = "x" * 20_000
    request = build_request(event_of(track(properties={"description": long_value, "sku": "S-1"})),
                            SETTINGS, now_ms=NOW_MS)
    assert_fits(request)
    params = dict(request.params)
    assert long_value.startswith(params["ce_description"])
    assert len(params["ce_description"]) > 64
    assert params["ce_sku"] == "S-1"
    assert params["event"] == "purchase"
    assert params["project"] == "mywebsite.com"
    # it is cut no more than needed: a little headroom at most
    assert len(request.full_url()) > MAX_URL_BYTES - 200


def test_longest_value_is_cut_first_and_shorter_ones_are_kept():
    props = {"big": "b" * 12_000, "medium": "m" * 3_000}
    request = build_request(event_of(track(properties=props)), SETTINGS, now_ms=NOW_MS)
    assert_fits(request)
    params = dict(request.params)
    assert params["ce_medium"] == "m" * 3_000
    assert len(params["ce_big"]) < 12_000


def test_long_trait_is_cut_as_well():
    identity = VisitorIdentity()
    request_of(dict(SEED_IDENTIFY, traits={"bio": "β" * 5_000, "email": "jane.doe@example.com"}),
               identity=identity)
    request = build_request(event_of(track(), identity), SETTINGS, now_ms=NOW_MS)
    assert_fits(request)
    params = dict(request.params)
    assert ("β" * 5_000).startswith(params["cv_bio"])
    assert params["cv_email"] == "jane.doe@example.com"


def test_multibyte_values_are_cut_by_encoded_length():
    request = build_request(event_of(track(properties={"text": "日本語テキスト" * 2_000})), SETTINGS, now_ms=NOW_MS)
    assert_fits(request)


def test_request_too_large_when_cutting_cannot_help():
    props = {f"p{i:03d}": "v" * 70 for i in range(200)}  # 200 values, each already near the cut floor
    result = build_request(event_of(track(properties=props)), SETTINGS, now_ms=NOW_MS)
    assert isinstance(result, Skipped)
    assert result.reason == "too_large"


def test_identifying_values_are_never_cut_so_huge_email_is_too_large():
    obj = track(context={"ip": "1.2.3.4", "traits": {"email": "a" * 9_000 + "@example.com"}})
    result = build_request(event_of(obj), SETTINGS, now_ms=NOW_MS)
    assert isinstance(result, Skipped)
    assert result.reason == "too_large"


def test_fit_url_leaves_short_requests_alone():
    request = request_of(SEED_TRACK)
    assert fit_url(request) is request


def test_fit_url_with_custom_limit():
    request = WoopraRequest("https://w.example/track/ce/",
                            (("project", "p"), ("ce_a", "a" * 1000), ("ce_b", "b" * 100)), None, {})
    fitted = fit_url(request, limit=600)
    assert isinstance(fitted, WoopraRequest)
    assert len(fitted.full_url()) <= 600
    assert dict(fitted.params)["ce_b"] == "b" * 100
    assert dict(fitted.params)["project"] == "p"
    assert math.isclose(len(dict(fitted.params)["ce_a"]), 600 - len("https://w.example/track/ce/?project=p&ce_a="
                                                                      "&ce_b=" + "b" * 100), abs_tol=10)


def test_page_property_named_referer_cannot_replace_top_level_referer():
    obj = copy.deepcopy(PAGE)
    obj["properties"] = {"referer": "EVIL"}
    params = params_of(obj)
    assert params["referer"] == "https://www.google.com/"
    assert params["ce_referer"] == "EVIL"


def test_newest_trait_wins_even_when_key_case_differs_between_calls():
    identity = VisitorIdentity()
    request_of(dict(SEED_IDENTIFY, timestamp="2026-03-02T09:00:30Z", traits={"Name": "New"}), identity=identity)
    request_of(dict(SEED_IDENTIFY, timestamp="2026-03-02T09:00:10Z", traits={"name": "Old"}), identity=identity)
    later = dict(SEED_TRACK, timestamp="2026-03-02T09:00:40Z")
    assert params_of(later, identity=identity)["cv_name"] == "New"


def test_encode_query_is_exactly_urlencode_on_awkward_text():
    import random
    from urllib.parse import urlencode

    from transforms.rules.woopra_mapping import encode_query

    alphabet = "aZ09_.-~ +&=%@/?#:;,!*'()[]{}\"<>\\|^`$\x00\n\t\x7féüß€😀中"
    rng = random.Random(3)
    for _ in range(2_000):
        params = tuple(("".join(rng.choices(alphabet, k=rng.randint(0, 6))),
                        "".join(rng.choices(alphabet, k=rng.randint(0, 12)))) for _ in range(rng.randint(0, 5)))
        assert encode_query(params) == urlencode(params), params
        assert encode_query(params) == urlencode(params), params  # the second time from the cache


def test_a_request_of_emoji_is_still_cut_to_the_url_limit():
    # An emoji is 4 UTF-8 bytes, 12 characters once encoded: a bound of 9 per character let
    # such a request through at about 9 KiB.
    event = validate_event({"type": "track", "event": "Signed Up", "anonymousId": "a", "timestamp": 1,
                            "properties": {"note": "😀" * 700}})
    request = build_request(event, WoopraSettings(project="example.com"), now_ms=2)
    assert isinstance(request, WoopraRequest)
    assert len(request.full_url().encode("utf-8")) <= MAX_URL_BYTES
    assert request.params[-1][0] == "ce_note" and 64 <= len(request.params[-1][1]) < 700


# ----- campaigns, language, screen (issue 21, item 3; docs/behaviour.md#woopra-mapping) -------

CAMPAIGN_URL = ("https://shop.example.com/spring?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale"
                "&utm_term=headphones&utm_content=hero&utm_id=c-42")
CAMPAIGN_PARAMS = {"ce_campaign_name": "spring_sale", "ce_campaign_source": "newsletter", "ce_campaign_medium": "email",
                   "ce_campaign_term": "headphones", "ce_campaign_content": "hero", "ce_campaign_id": "c-42"}


def campaign_of(params):
    return {k: v for k, v in params.items() if k.startswith("ce_campaign_")}


def test_page_view_sends_the_utm_parameters_of_its_address_as_the_tracker_does():
    obj = {"type": "page", "anonymousId": ANON, "context": {"page": {"url": CAMPAIGN_URL}}}
    params = params_of(obj)
    assert campaign_of(params) == CAMPAIGN_PARAMS
    assert params["ce_url"] == CAMPAIGN_URL.split(".com", 1)[1]  # the address itself is sent unchanged


def test_a_track_call_sends_the_campaign_of_its_page():
    params = params_of(track(context={"page": {"url": CAMPAIGN_URL}}))
    assert campaign_of(params) == CAMPAIGN_PARAMS
    assert "ce_url" not in params  # still no page-view parameters on a track call


def test_woo_parameters_count_when_there_is_no_utm_one():
    url = "https://s.example/?woo_campaign=w&woo_source=ws&utm_source=us"
    params = params_of({"type": "page", "anonymousId": ANON, "context": {"page": {"url": url}}})
    assert campaign_of(params) == {"ce_campaign_name": "w", "ce_campaign_source": "us"}


def test_page_path_and_search_without_a_full_url_carry_the_campaign_too():
    page = {"path": "/p", "search": "?utm_campaign=spring%20sale"}
    params = params_of({"type": "page", "anonymousId": ANON, "context": {"page": page}})
    assert campaign_of(params) == {"ce_campaign_name": "spring sale"}


def test_context_campaign_is_sent_and_the_address_wins_a_tie():
    context = {"campaign": {"name": "from-context", "source": "ctx-source", "medium": "cpc", "term": None,
                            "content": "", "ignored": "x"},
               "page": {"url": "https://s.example/?utm_campaign=from-url"}}
    params = params_of(track(context=context))
    assert campaign_of(params) == {"ce_campaign_name": "from-url", "ce_campaign_source": "ctx-source",
                                   "ce_campaign_medium": "cpc"}


def test_a_property_of_the_same_name_wins_over_the_campaign():
    params = params_of(track(properties={"campaign_name": "mine"}, context={"page": {"url": CAMPAIGN_URL}}))
    assert params["ce_campaign_name"] == "mine"


def test_identify_calls_carry_no_campaign():
    obj = dict(SEED_IDENTIFY, context={"campaign": {"name": "x"}, "page": {"url": CAMPAIGN_URL}})
    assert campaign_of(params_of(obj)) == {}


@pytest.mark.parametrize("call", ["page", "track", "identify"])
def test_language_and_screen_are_visit_parameters_on_every_call(call):
    obj = {"page": dict(PAGE), "track": track(), "identify": dict(SEED_IDENTIFY)}[call]
    obj["context"] = dict(obj["context"], locale="en-GB", screen={"width": 1440, "height": 900, "density": 2})
    params = params_of(obj)
    assert (params["language"], params["screen"]) == ("en-GB", "1440x900")
    assert "ce_locale" not in params and "cv_screen" not in params


@pytest.mark.parametrize("screen", [{"width": 1440}, {"width": 0, "height": 900}, {"width": "1440", "height": 900},
                                    {"width": 1440.5, "height": 900}, {"width": True, "height": 900}, "1440x900",
                                    {"width": float("inf"), "height": 900}])
def test_a_screen_without_two_positive_whole_sides_is_left_out(screen):
    params = params_of(track(context={"screen": screen, "locale": ""}))
    assert "screen" not in params and "language" not in params


def test_screen_sides_as_whole_floats():
    assert params_of(track(context={"screen": {"width": 1440.0, "height": 900.0}}))["screen"] == "1440x900"
