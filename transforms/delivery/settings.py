"""How a worker sends: its share of the rate, concurrency, timeouts and the retry policy."""

from __future__ import annotations

from dataclasses import dataclass

from transforms.delivery.rate_limit import ENVOY_DOMAIN, Limiter, TokenBucket, envoy_rate_limiter
from transforms.delivery.retry import RetryPolicy


@dataclass(frozen=True)
class DeliverySettings:
    """How to send: per-process rate, concurrency, timeouts and the retry policy."""

    rate_limit: float = 100.0  # requests per second for this worker process
    max_in_flight: int = 32
    request_timeout: float = 10.0
    retry: RetryPolicy = RetryPolicy()
    # Set: one limit for the whole job from this Envoy Rate Limit Service (host:port).
    rate_limiter_address: str | None = None
    rate_limiter_domain: str = ENVOY_DOMAIN
    project: str = ""  # the Envoy descriptor's value
    # Send from a child process, on a core of its own (see transforms/delivery/process.py).
    separate_process: bool = True
    # Several worker processes (or Dataflow): reshuffle the requests before sending, so that every
    # process gets its share of them, and the outcomes right after, so that a failing write after
    # Send does not send again (transforms/deliver.py).
    spread_over_workers: bool = False

    def limiter(self) -> Limiter:
        """This process's limiter: Envoy's global one when configured, else a token bucket."""
        if self.rate_limiter_address:
            return envoy_rate_limiter(self.rate_limiter_address, self.project, self.rate_limiter_domain)
        return TokenBucket(self.rate_limit)
