"""The Import API's call budget (docs/backfill.md#the-import-sink): calls per minute, hour and day (pure, no Beam).

Woopra limits its REST API per project: 300 calls a minute, 600 an hour and 3,000 a day by its
docs, and answers 429 beyond. ``CallBudget`` never lets more than ``limit`` calls start in any
window of ``seconds`` (a sliding window: stricter than, and so safe for, windows fixed to the clock),
for every limit at once. Calls may go out in a burst as long as every window allows them.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MINUTE, HOUR, DAY = 60.0, 3600.0, 86_400.0


@dataclass(frozen=True)
class CallLimit:
    """At most ``calls`` calls in any ``seconds``."""

    calls: int
    seconds: float

    def __post_init__(self) -> None:
        if self.calls < 1 or self.seconds <= 0:
            raise ValueError(f"a call limit needs calls >= 1 and seconds > 0, got {self.calls} in {self.seconds}")

    def label(self) -> str:
        """``300/min``, ``600/h``, ``3,000/day`` (or ``2/1.5s``)."""
        unit = {MINUTE: "min", HOUR: "h", DAY: "day"}.get(self.seconds, f"{self.seconds:g}s")
        return f"{self.calls:,}/{unit}"


# Woopra's documented REST limits ("subject to change").
WOOPRA_LIMITS = (CallLimit(300, MINUTE), CallLimit(600, HOUR), CallLimit(3000, DAY))
_UNITS = {"s": 1.0, "min": MINUTE, "h": HOUR, "day": DAY}


def parse_limits(text: str) -> tuple[CallLimit, ...]:
    """``300/min,600/h,3000/day`` as limits (units s, min, h, day); ValueError naming what is wrong."""
    limits = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        calls, _, unit = part.partition("/")
        if not calls.strip().isdigit() or unit.strip() not in _UNITS or int(calls) < 1:
            raise ValueError(f"{part!r} is not CALLS/UNIT (a whole number of calls per s, min, h or day), "
                             "e.g. 300/min,600/h,3000/day")
        limits.append(CallLimit(int(calls), _UNITS[unit.strip()]))
    if not limits:
        raise ValueError("give at least one limit, e.g. 300/min,600/h,3000/day")
    return tuple(limits)


class CallBudget:
    """Hands out start times for calls so that no window of any limit holds more than its calls.

    ``reserve`` never blocks: it books the earliest allowed start and returns how long to wait
    for it. ``hold_until`` books nothing before a time (Woopra's ``Retry-After``). Thread-safe.
    """

    def __init__(self, limits: Sequence[CallLimit] = WOOPRA_LIMITS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = tuple(limits)
        self._clock = clock
        self._lock = threading.Lock()
        # Start times of the calls each limit still sees, oldest first; at most ``calls`` kept.
        self._starts = [collections.deque[float](maxlen=limit.calls) for limit in self.limits]
        self._not_before = float("-inf")

    def reserve(self) -> float:
        """Book one call at its earliest allowed start; return the seconds until then."""
        with self._lock:
            now = self._clock()
            start = max(now, self._not_before)
            for limit, starts in zip(self.limits, self._starts, strict=True):
                if len(starts) == limit.calls:
                    start = max(start, starts[0] + limit.seconds)
            for starts in self._starts:
                starts.append(start)  # maxlen drops the oldest, which no longer limits anything
            return start - now

    def hold_until(self, moment: float) -> None:
        """Start no call before ``moment`` (the clock's time), e.g. after a 429 with Retry-After."""
        with self._lock:
            self._not_before = max(self._not_before, moment)


def seconds_for(calls: int, limits: Sequence[CallLimit] = WOOPRA_LIMITS) -> float:
    """How long ``calls`` calls take under ``limits`` from a fresh budget: when the last one starts."""
    if calls <= 0:
        return 0.0
    clock = [0.0]
    budget = CallBudget(limits, clock=lambda: clock[0])
    last = 0.0
    for _ in range(calls):
        last = budget.reserve()  # the clock stands still: each answer is the start from time 0
    return last


def binding_limit(calls: int, limits: Sequence[CallLimit] = WOOPRA_LIMITS) -> CallLimit:
    """The limit that sets how long ``calls`` calls take (the longest wait it alone would impose)."""
    return max(limits, key=lambda limit: ((calls - 1) // limit.calls) * limit.seconds)
