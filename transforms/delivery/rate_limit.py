"""Request rate limiting (docs/behaviour.md#delivery), behind the interface of Beam's ``RateLimiter``.

- ``TokenBucket``: the job's rate (or a worker process's share of it) in one process, shared by
  all its threads. Its ``reserve`` never blocks, so the asyncio sender can wait without a thread.
- ``envoy_rate_limiter``: Beam's ``EnvoyRateLimiter``, one limit for the whole job across
  workers, kept by an Envoy Rate Limit Service (``--rate_limiter_address``).

Beam is imported only for Envoy's limiter: the delivery process (transforms/delivery/process.py)
imports this module, and without Beam it starts in a fraction of a second instead of seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from apache_beam.io.components.rate_limiter import EnvoyRateLimiter

ENVOY_DOMAIN = "woopra"
METRICS_NAMESPACE = "woopra"


class Limiter(Protocol):
    """What the sender asks of a rate limiter: Beam's ``RateLimiter.allow``, which may block."""

    def allow(self) -> bool: ...


class TokenBucket:
    """Allows ``rate`` acquisitions per second on average, with bursts of at most ``burst``.

    One bucket is shared by every thread of a worker process, so concurrent senders together
    never exceed the rate. ``allow`` (Beam's interface) blocks until the token is due.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = float(rate)
        # A small burst keeps every 1-second window close to the rate (no startup spike).
        self._auto_burst = burst is None
        self.burst = float(burst) if burst is not None else max(1.0, self.rate / 20)
        self.configured_rate = self.rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()
        self.waited_seconds = 0.0

    def reserve(self) -> float:
        """Take one token now (possibly borrowing) and return how long to wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
            self.waited_seconds += wait
            return wait

    def acquire(self) -> float:
        """Block until one request may be sent; return the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def allow(self, **kwargs: object) -> bool:
        """Beam's ``RateLimiter`` interface: wait for a token, then allow."""
        self.acquire()
        return True

    def set_rate(self, rate: float) -> None:
        """Change the rate (adaptive back-off); tokens already earned are kept."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self.rate = float(rate)
            if self._auto_burst:  # keep bursts proportional: a lowered rate gets a lower burst
                self.burst = max(1.0, self.rate / 20)
                self._tokens = min(self._tokens, self.burst)


class AdaptiveRate:
    """Back off when Woopra answers 429, recover when it stops (additive increase, halving).

    A 429 halves the bucket's rate (at most once a second, never below 5% of the configured
    rate); each second without one gives back 10% of the configured rate until it is reached.
    The time spent below the configured rate is the throttled time Beam's metrics report.
    """

    FLOOR = 0.05
    DECREASE = 0.5
    RECOVER = 0.10

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self._changed_at = float("-inf")
        self._throttled_since: float | None = None
        self._throttled_before = 0.0  # seconds of the back-offs that have ended

    def observe(self, rate_limited: bool, now: float) -> None:
        """Record one answer from Woopra at time ``now`` (seconds, monotonic)."""
        if now - self._changed_at < 1.0:
            return
        configured, current = self.bucket.configured_rate, self.bucket.rate
        if rate_limited:
            lowered = max(configured * self.FLOOR, current * self.DECREASE)
            if lowered < current:
                self.bucket.set_rate(lowered)
                self._changed_at = now
                if self._throttled_since is None:
                    self._throttled_since = now
        elif current < configured:
            self.bucket.set_rate(min(configured, current + configured * self.RECOVER))
            self._changed_at = now
            if self.bucket.rate >= configured and self._throttled_since is not None:
                self._throttled_before += now - self._throttled_since
                self._throttled_since = None

    def throttled_seconds(self, now: float) -> float:
        """Seconds spent below the configured rate up to ``now``, back-offs still going on included."""
        ongoing = now - self._throttled_since if self._throttled_since is not None else 0.0
        return self._throttled_before + max(0.0, ongoing)


def envoy_rate_limiter(address: str, project: str, domain: str = ENVOY_DOMAIN) -> EnvoyRateLimiter:
    """Beam's global limiter: every request asks the Envoy RLS at ``address`` for one hit of the
    descriptor ``woopra_project=<project>`` in ``domain``; the RLS config holds the limit."""
    from apache_beam.io.components.rate_limiter import EnvoyRateLimiter

    return EnvoyRateLimiter(
        service_address=address,
        domain=domain,
        descriptors=[{"woopra_project": project}],
        namespace=METRICS_NAMESPACE,
    )
