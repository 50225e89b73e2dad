"""Unit and property tests for transforms/delivery/call_budget.py: calls per minute, hour and day."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.plan import calls_plan
from transforms.delivery.call_budget import DAY, HOUR, MINUTE, WOOPRA_LIMITS, CallBudget, CallLimit, seconds_for


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def starts_of(budget: CallBudget, clock: Clock, arrivals: list[float]) -> list[float]:
    """Each call arrives at its time, waits what the budget says, and starts."""
    starts = []
    for at in arrivals:
        clock.now = max(clock.now, at)
        starts.append(clock.now + budget.reserve())
    return starts


limits = st.lists(st.builds(CallLimit, st.integers(min_value=1, max_value=6), st.sampled_from([1.0, 2.5, 10.0])),
                  min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(limits=limits, gaps=st.lists(st.floats(min_value=0, max_value=3), max_size=40))
def test_no_window_of_any_limit_ever_holds_more_than_its_calls(limits, gaps):
    clock = Clock()
    arrivals = [sum(gaps[:i + 1]) for i in range(len(gaps))]
    starts = starts_of(CallBudget(limits, clock), clock, arrivals)
    assert all(start >= arrival for start, arrival in zip(starts, arrivals, strict=True))
    for limit in limits:
        for start in starts:  # the window beginning at each start
            # (less a nanosecond: a start is now + wait, which floating point may round)
            assert sum(start <= other < start + limit.seconds - 1e-9 for other in starts) <= limit.calls


@settings(max_examples=100, deadline=None)
@given(limits=limits, calls=st.integers(min_value=1, max_value=30))
def test_a_call_waits_only_when_a_window_is_full(limits, calls):
    clock = Clock()
    starts = starts_of(CallBudget(limits, clock), clock, [0.0] * calls)
    for n, start in enumerate(starts):
        if start > 0:  # some limit had its calls within the window before this start
            assert any(sum(start - limit.seconds < other <= start for other in starts[:n]) >= limit.calls
                       or sum(start - limit.seconds <= other < start for other in starts[:n]) >= limit.calls
                       for limit in limits)


def test_a_retry_after_holds_every_later_call():
    clock = Clock()
    budget = CallBudget([CallLimit(100, MINUTE)], clock)
    assert budget.reserve() == 0
    budget.hold_until(30.0)
    assert budget.reserve() == 30.0
    clock.now = 31.0
    assert budget.reserve() == 0


def test_woopras_documented_limits_in_time_for_a_backfill():
    assert seconds_for(300) == 0  # one minute's calls go at once
    assert seconds_for(301) == MINUTE
    assert seconds_for(600) == MINUTE
    assert seconds_for(601) == HOUR
    assert seconds_for(3000) == 4 * HOUR + MINUTE  # each hour: 300, then 300 a minute later
    assert seconds_for(3001) == DAY
    assert calls_plan(412, WOOPRA_LIMITS).startswith("plan: 412 import calls: about 60 s at 300/min")
    assert calls_plan(3001, WOOPRA_LIMITS).startswith("plan: 3,001 import calls: about 24 h at 3,000/day")
