"""Retry policy for Woopra requests (docs/behaviour.md#delivery), as a small immutable value (pure, no Beam)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum

RETRYABLE_STATUSES = frozenset({408, 429})


class Verdict(StrEnum):
    """What to do with one response."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECT = "reject"


def classify_status(status: int) -> Verdict:
    """2xx delivered; 408, 429 and 5xx retried; any other status rejected (no retry)."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status in RETRYABLE_STATUSES or 500 <= status < 600:
        return Verdict.RETRY
    return Verdict.REJECT


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: capped exponential backoff with full jitter."""

    max_attempts: int = 5
    max_retry_seconds: float = 600.0
    backoff_initial: float = 0.5
    backoff_max: float = 60.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter."""
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** (attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def next_delay(
        self, attempt: int, elapsed: float, retry_after: float | None, rng: random.Random | None = None
    ) -> float | None:
        """The wait before the next attempt, or None when the retry budget is spent.

        ``attempt`` attempts have been made and ``elapsed`` seconds have passed since the first.
        Woopra's ``Retry-After`` wins over our own backoff when it asks for longer.
        """
        if attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt, rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if elapsed + delay > self.max_retry_seconds:
            return None
        return delay
