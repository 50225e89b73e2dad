"""Unit tests for transforms/rules/failure_cause.py: the plain cause of a failed delivery."""

from __future__ import annotations

import pytest

from transforms.rules.failure_cause import MAX_CAUSE_LENGTH, failure_cause

URL = "http://127.0.0.1:9/track/ce/"


@pytest.mark.parametrize(("error", "status", "cause"), [
    ("ConnectionRefusedError: [Errno 111] Connection refused", None, "connection refused by 127.0.0.1:9"),
    ("OSError: Connect call failed ('127.0.0.1', 9)", None, "connection refused by 127.0.0.1:9"),
    ("HTTP 503", 503, "HTTP 503 from 127.0.0.1:9"),
    ("TimeoutError: ", None, "no answer from 127.0.0.1:9 within --request_timeout"),
    ("gaierror: [Errno -2] Name or service not known", None, "127.0.0.1:9 not found (DNS)"),
    ("SSLCertVerificationError: certificate verify failed", None, "TLS certificate of 127.0.0.1:9 not trusted"),
    ("ConnectionResetError: Connection reset by peer", None, "127.0.0.1:9 dropped the connection"),
    ("the delivery process stopped before answering", None, "the delivery process stopped before answering"),
    # libcurl's texts, as the delivery's client words them (transforms/delivery/curl_client.py)
    ("TransportError: Failed to connect to 127.0.0.1:9 after 0 ms: Could not connect to server (curl error 7)",
     None, "connection refused by 127.0.0.1:9"),
    ("TransportError: Could not resolve host: nowhere.invalid (curl error 6)", None, "127.0.0.1:9 not found (DNS)"),
    ("TransportError: Operation timed out after 1001 milliseconds with 0 bytes received (curl error 28)", None,
     "no answer from 127.0.0.1:9 within --request_timeout"),
    ("TransportError: SSL certificate problem: unable to get local issuer certificate (curl error 60)", None,
     "TLS certificate of 127.0.0.1:9 not trusted"),
    ("ServerDisconnectedError: Empty reply from server (curl error 52)", None, "127.0.0.1:9 dropped the connection"),
])
def test_causes_in_plain_words(error, status, cause):
    assert failure_cause(error, status, URL) == cause


def test_an_unknown_error_is_kept_on_one_short_line():
    cause = failure_cause("ValueError: " + "x\n" * 200, None, URL)
    assert "\n" not in cause and len(cause) == MAX_CAUSE_LENGTH and cause.endswith("…")
