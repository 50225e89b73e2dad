"""Unit tests for pipeline/tools/redact.py: the redacted forms operators see (docs/behaviour.md#privacy)."""

from __future__ import annotations

import json

import pytest

from pipeline.tools.redact import (
    looks_like_email,
    redact_cookie,
    redact_email,
    redact_event,
    redact_ip,
    redact_params,
    redact_text,
    redacted_url,
)

UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36"


@pytest.mark.parametrize(("email", "redacted"), [
    ("jane.doe@example.com", "j***@example.com"),
    ("b@example.org", "b***@example.org"),
    ("  carol+news@mail.example.net ", "c***@mail.example.net"),
])
def test_redact_email_keeps_first_letter_and_domain(email, redacted):
    assert redact_email(email) == redacted


@pytest.mark.parametrize(("ip", "redacted"), [
    ("203.0.113.50", "203.0.113.x"),
    ("2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::x"),
    ("2001:0db8:0000::1", "2001:db8:0::x"),
    ("not an ip", "***"),
])
def test_redact_ip_keeps_the_network_part(ip, redacted):
    assert redact_ip(ip) == redacted


def test_redact_cookie_keeps_four_characters_of_a_long_cookie_only():
    assert redact_cookie("AH47DHS5SF182DIQZJD") == "AH47***"
    assert redact_cookie("K2M9QX7BT4WA") == "K2M9***"
    assert redact_cookie("SHORT") == "***"


def test_looks_like_email():
    assert looks_like_email("jane.doe@example.com")
    assert not looks_like_email("mail jane.doe@example.com now")
    assert not looks_like_email("Jane Doe") and not looks_like_email(42)


def test_redact_params_by_name_and_by_look():
    params = [("project", "mywebsite.com"), ("cookie", "AH47DHS5SF182DIQZJD"), ("ip", "203.0.113.50"),
              ("cv_email", "jane.doe@example.com"), ("cv_contact", "ops@example.com"), ("cv_name", "Jane Doe"),
              ("ce_url", "https://shop.example.com/?ref=jane.doe@example.com"), ("ce_amount", "149.95")]
    assert redact_params(params) == [
        ("project", "mywebsite.com"), ("cookie", "AH47***"), ("ip", "203.0.113.x"),
        ("cv_email", "j***@example.com"), ("cv_contact", "o***@example.com"), ("cv_name", "Jane Doe"),
        ("ce_url", "https://shop.example.com/?ref=j***@example.com"), ("ce_amount", "149.95")]


def test_redacted_url_encodes_values_but_leaves_the_mask_readable():
    url = redacted_url("https://www.woopra.com/track/ce/", [("cookie", "AH47DHS5SF182DIQZJD"),
                                                            ("cv_email", "jane.doe@example.com")])
    assert url == "https://www.woopra.com/track/ce/?cookie=AH47***&cv_email=j***%40example.com"


def test_redact_event_walks_nested_fields_and_leaves_the_rest():
    event = {"type": "identify", "userId": "user-123", "traits": {"email": "jane.doe@example.com", "name": "Jane"},
             "context": {"ip": "203.0.113.50", "userAgent": UA, "list": ["x@example.com", 1]},
             "vendor_ids": {"woopra_cookie": "AH47DHS5SF182DIQZJD"}}
    redacted = redact_event(event)
    assert redacted["traits"] == {"email": "j***@example.com", "name": "Jane"}
    assert redacted["context"] == {"ip": "203.0.113.x", "userAgent": UA, "list": ["x***@example.com", 1]}
    assert redacted["vendor_ids"] == {"woopra_cookie": "AH47***"}
    assert redacted["userId"] == "user-123"
    assert event["traits"]["email"] == "jane.doe@example.com"  # a new object: the input is untouched


def test_redact_text_of_an_unparseable_line_and_of_an_error_with_a_url():
    line = json.dumps({"context": {"ip": "203.0.113.50", "userAgent": UA},
                       "traits": {"email": "jane.doe@example.com"},
                       "vendor_ids": {"woopra_cookie": "AH47DHS5SF182DIQZJD"}})[:-3]
    redacted = redact_text(line)
    for secret in ("203.0.113.50", "jane.doe@", "AH47DHS5SF182DIQZJD"):
        assert secret not in redacted
    assert "Chrome/131.0.0.0" in redacted  # a version number is not an IP
    error = "Max retries exceeded with url: /track/ce/?project=p&cookie=AH47DHS5SF182DIQZJD&ip=203.0.113.50&x=1"
    assert redact_text(error) == "Max retries exceeded with url: /track/ce/?project=p&cookie=AH47***&ip=203.0.113.x&x=1"
