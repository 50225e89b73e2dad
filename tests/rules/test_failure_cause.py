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
])
def test_causes_in_plain_words(error, status, cause):
    assert failure_cause(error, status, URL) == cause


def test_an_unknown_error_is_kept_on_one_short_line():
    cause = failure_cause("ValueError: " + "x\n" * 200, None, URL)
    assert "\n" not in cause and len(cause) == MAX_CAUSE_LENGTH and cause.endswith("…")
