"""Unit tests for transforms/delivery/retry.py: status classification and the retry policy.

The rules: docs/behaviour.md#delivery.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from transforms.delivery.retry import RetryPolicy, Verdict, classify_status, parse_retry_after


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status):
    assert classify_status(status) is Verdict.DELIVERED


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_408_429_and_5xx_are_retried(status):
    assert classify_status(status) is Verdict.RETRY


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 413, 414, 422, 431, 301, 302, 304])
def test_other_4xx_and_3xx_are_rejected_without_retry(status):
    assert classify_status(status) is Verdict.REJECT


# ----- Retry-After ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "header, expected",
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("-3", 0.0),
    ],
)
def test_retry_after_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_in_the_future():
    now = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC).timestamp()
    header = "Mon, 02 Mar 2026 09:00:30 GMT"
    assert parse_retry_after(header, now=now) == pytest.approx(30.0)


def test_retry_after_http_date_in_the_past_is_zero():
    now = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("Mon, 02 Mar 2026 08:00:00 GMT", now=now) == 0.0


def test_retry_after_http_date_uses_the_real_clock_by_default():
    header = format_datetime(datetime(2001, 1, 1, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(header) == 0.0


@pytest.mark.parametrize("header", [None, "", "soon", "Mon, 99 Foo 2026", "12 apples", "\x00"])
def test_retry_after_garbage_is_none(header):
    assert parse_retry_after(header) is None


# ----- RetryPolicy.next_delay -------------------------------------------------------------

def test_default_policy_matches_spec_defaults():
    policy = RetryPolicy()
    assert policy.max_attempts == 5
    assert policy.max_retry_seconds == 600


@pytest.mark.parametrize("max_attempts", [1, 2, 5])
def test_no_delay_once_max_attempts_are_made(max_attempts):
    policy = RetryPolicy(max_attempts=max_attempts, backoff_initial=0.01)
    rng = random.Random(1)
    delays = [policy.next_delay(attempt, 0.0, None, rng) for attempt in range(1, max_attempts + 1)]
    assert all(d is not None for d in delays[:-1])
    assert delays[-1] is None
    assert policy.next_delay(max_attempts + 3, 0.0, None, rng) is None


def test_backoff_grows_exponentially_within_jitter_bounds_and_caps():
    policy = RetryPolicy(max_attempts=100, max_retry_seconds=1e9, backoff_initial=0.5, backoff_max=8.0)
    rng = random.Random(1234)
    for attempt in range(1, 12):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = policy.next_delay(attempt, 0.0, None, rng)
            assert ceiling / 2 <= delay <= ceiling, (attempt, delay)


def test_jitter_actually_varies_and_is_reproducible_with_a_seed():
    policy = RetryPolicy(backoff_initial=1.0)
    first = [policy.next_delay(1, 0.0, None, random.Random(7)) for _ in range(3)]
    assert len(set(first)) == 1
    rng = random.Random(7)
    spread = {policy.next_delay(2, 0.0, None, rng) for _ in range(20)}
    assert len(spread) > 10


def test_retry_budget_is_respected():
    policy = RetryPolicy(max_attempts=10, max_retry_seconds=10.0, backoff_initial=1.0)
    rng = random.Random(3)
    assert policy.next_delay(1, 0.0, None, rng) is not None
    assert policy.next_delay(1, 9.99, None, rng) is None  # any delay (>= 0.5 s) overruns 10 s
    assert policy.next_delay(1, 10.0, None, rng) is None


def test_retry_after_longer_than_backoff_is_honoured():
    policy = RetryPolicy(backoff_initial=0.001)
    assert policy.next_delay(1, 0.0, 7.0, random.Random(0)) == 7.0


def test_retry_after_shorter_than_backoff_does_not_shorten_it():
    policy = RetryPolicy(backoff_initial=4.0)
    delay = policy.next_delay(1, 0.0, 0.0, random.Random(0))
    assert 2.0 <= delay <= 4.0


def test_retry_after_can_exhaust_the_budget():
    policy = RetryPolicy(max_attempts=5, max_retry_seconds=600, backoff_initial=0.001)
    assert policy.next_delay(1, 0.0, 3600.0, random.Random(0)) is None
    assert policy.next_delay(1, 500.0, 100.0, random.Random(0)) == 100.0
    assert policy.next_delay(1, 500.5, 100.0, random.Random(0)) is None


def test_zero_budget_means_no_retries():
    policy = RetryPolicy(max_attempts=5, max_retry_seconds=0, backoff_initial=0.001)
    assert policy.next_delay(1, 0.0, None, random.Random(0)) is None


def test_next_delay_works_without_explicit_rng():
    delay = RetryPolicy(backoff_initial=0.2).next_delay(1, 0.0, None)
    assert 0.1 <= delay <= 0.2
