"""Unit tests for transforms/delivery/rate_limit.py: the per-process token bucket (docs/behaviour.md#delivery)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.sending import send_all
from transforms.delivery.rate_limit import TokenBucket


class FakeClock:
    """A clock that only moves when someone sleeps (or the test advances it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def bucket(rate, burst=None, clock=None):
    clock = clock or FakeClock()
    return TokenBucket(rate, burst=burst, clock=clock, sleep=clock.sleep), clock


@pytest.mark.parametrize("rate", [0, -1, -0.5])
def test_rate_must_be_positive(rate):
    with pytest.raises(ValueError):
        TokenBucket(rate)


@pytest.mark.parametrize("rate, n", [(100, 1005), (7, 207), (2000, 10_000), (0.5, 21)])
def test_long_run_rate_is_exact(rate, n):
    limiter, clock = bucket(rate)
    start = clock.now
    for _ in range(n):
        limiter.acquire()
    burst = max(1.0, rate / 20)
    assert clock.now - start == pytest.approx((n - burst) / rate, rel=1e-9)
    assert limiter.waited_seconds == pytest.approx(clock.now - start, rel=1e-9)


def test_each_acquire_after_the_burst_waits_one_interval():
    limiter, clock = bucket(100, burst=5)
    waits = [limiter.acquire() for _ in range(20)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.01] * 15)


@pytest.mark.parametrize("rate, burst", [(100, None), (100, 10), (10, 1), (2000, None)])
def test_burst_after_idle_is_bounded(rate, burst):
    limiter, clock = bucket(rate, burst=burst)
    clock.advance(3600)  # a long idle time must not store more than the burst
    immediate = 0
    for _ in range(10_000):
        if limiter.reserve() > 0:
            break
        immediate += 1
    expected_burst = burst if burst is not None else max(1.0, rate / 20)
    assert immediate == int(expected_burst)


def test_any_one_second_window_stays_near_the_rate():
    rate = 50
    limiter, clock = bucket(rate)
    times = []
    for _ in range(500):
        limiter.acquire()
        times.append(clock.now)
    burst = max(1.0, rate / 20)
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + 1.0)
        assert in_window <= rate + burst


def test_waits_account_for_time_that_passed():
    limiter, clock = bucket(10, burst=1)
    assert limiter.acquire() == 0.0
    clock.advance(0.05)  # half an interval earned
    assert limiter.acquire() == pytest.approx(0.05)
    clock.advance(1.0)
    assert limiter.acquire() == 0.0


def test_set_rate_changes_the_long_run_rate():
    limiter, clock = bucket(100, burst=1)
    for _ in range(10):
        limiter.acquire()
    limiter.set_rate(10)
    assert limiter.rate == 10
    start = clock.now
    for _ in range(51):
        limiter.acquire()
    # the bucket was empty: 51 acquisitions at 10/s take 5.1 s (the first one pays the last 0.1 s debt)
    assert clock.now - start == pytest.approx(51 / 10, rel=1e-9)

    limiter.set_rate(1000)
    start = clock.now
    for _ in range(1000):
        limiter.acquire()
    assert clock.now - start == pytest.approx(1000 / 1000, rel=1e-6)


def test_set_rate_keeps_tokens_already_earned():
    limiter, clock = bucket(10, burst=5)
    for _ in range(5):
        limiter.acquire()
    clock.advance(0.3)  # 3 tokens earned at 10/s
    limiter.set_rate(1)
    assert [limiter.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert limiter.acquire() == pytest.approx(1.0)


@pytest.mark.parametrize("rate", [0, -5])
def test_set_rate_must_be_positive(rate):
    limiter, _ = bucket(10)
    with pytest.raises(ValueError):
        limiter.set_rate(rate)


def test_concurrent_reservations_each_get_their_own_slot():
    # A frozen clock: every reservation borrows; with correct locking the waits are exactly
    # 0 (burst), 1/rate, 2/rate, ... with no slot handed out twice.
    clock = FakeClock()
    rate, burst = 1000.0, 10.0
    limiter = TokenBucket(rate, burst=burst, clock=clock, sleep=lambda s: None)
    threads, per_thread = 8, 250
    waits: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker():
        start.wait(timeout=10)
        mine = [limiter.reserve() for _ in range(per_thread)]
        with lock:
            waits.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=20)
        assert not t.is_alive()
    total = threads * per_thread
    assert len(waits) == total
    slots = sorted(round(w * rate) for w in waits)
    assert slots == [0] * int(burst) + list(range(1, total - int(burst) + 1))


def test_threads_with_real_clock_never_exceed_the_rate():
    rate = 2000.0
    limiter = TokenBucket(rate)
    burst = limiter.burst
    deadline = time.monotonic() + 0.5
    counts = [0] * 6

    def worker(index):
        for _ in range(100_000):  # bounded; the deadline ends it long before
            if time.monotonic() >= deadline:
                return
            limiter.acquire()
            counts[index] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(len(counts))]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=10)
        assert not t.is_alive()
    elapsed = time.monotonic() - started
    total = sum(counts)
    assert total > 0
    # Lower bound on time: ``total`` tokens cannot have been handed out faster than the rate allows.
    assert elapsed >= (total - burst) / rate - 0.001


# ----- adaptive back-off on 429 -----------------------------------------------------------------

def test_adaptive_rate_halves_on_429_and_recovers_when_woopra_stops_pushing_back():
    from transforms.delivery.rate_limit import AdaptiveRate

    bucket = TokenBucket(100, clock=lambda: 0.0)
    adaptive = AdaptiveRate(bucket)
    adaptive.observe(True, now=0.0)
    assert bucket.rate == 50
    adaptive.observe(True, now=0.5)  # at most one change a second
    assert bucket.rate == 50
    for second in range(1, 6):
        adaptive.observe(True, now=float(second))
    assert bucket.rate == 5  # floor: 5% of the configured rate
    assert bucket.burst == 1.0  # bursts shrink with the rate
    for second in range(6, 30):
        adaptive.observe(False, now=float(second))
    assert bucket.rate == 100  # back to the configured rate, never above


def test_sender_lowers_its_rate_while_woopra_answers_429(standin):
    from transforms.delivery.retry import RetryPolicy
    from transforms.delivery.sender import WoopraSender
    from transforms.rules.woopra_mapping import WoopraRequest
    from woopra_standin import Rule

    standin.set_rules([Rule(match={"event": "busy"}, statuses=[429, 200])])
    bucket = TokenBucket(1000)
    sender = WoopraSender(RetryPolicy(max_attempts=2, backoff_initial=0.001), limiter=bucket, max_in_flight=4)
    try:
        outcomes = send_all(sender, [WoopraRequest(standin.url + "/ce/", (("event", "busy"), ("n", str(i))), None, {})
                                    for i in range(10)])
    finally:
        sender.close()
    assert {o.result for o in outcomes} == {"delivered_200"}
    assert sender.rate_limited == 10
    assert bucket.rate < 1000


def test_adaptive_rate_counts_the_time_spent_below_the_configured_rate():
    from transforms.delivery.rate_limit import AdaptiveRate

    bucket = TokenBucket(100, clock=lambda: 0.0)
    adaptive = AdaptiveRate(bucket)
    adaptive.observe(False, now=0.0)
    assert adaptive.throttled_seconds(now=5.0) == 0.0  # never backed off
    adaptive.observe(True, now=10.0)  # 100 -> 50
    assert adaptive.throttled_seconds(now=12.5) == 2.5  # still backed off: counted up to now
    for second in range(11, 16):  # +10 a quiet second: back to 100 at t=15
        adaptive.observe(False, now=float(second))
    assert bucket.rate == 100
    assert adaptive.throttled_seconds(now=40.0) == 5.0  # the back-off ended at 15
    adaptive.observe(True, now=50.0)
    assert adaptive.throttled_seconds(now=51.0) == 6.0
