"""Request rate limiting (SPEC §5): a thread-safe token bucket shared by a whole process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Allows ``rate`` acquisitions per second on average, with bursts of at most ``burst``.

    One bucket is shared by every thread of a worker process; ``acquire`` blocks the caller until
    its token is due, so concurrent senders together never exceed the rate.
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
        self.burst = float(burst) if burst is not None else max(1.0, self.rate / 20)
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

    def set_rate(self, rate: float) -> None:
        """Change the rate (adaptive back-off); tokens already earned are kept."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self.rate = float(rate)
