"""A dry run's plan: how long sending its requests would take at the job's rate.

docs/operations.md, "Progress and the plan".

Pure formatting, plus ``plan_for_job``, which reads the rate and the concurrency from the options.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.dataflow_rules import worker_processes
from pipeline.job_settings import JobSettings
from pipeline.options import WoopraOptions, number_option
from transforms.delivery.call_budget import CallLimit, binding_limit, seconds_for
from transforms.rules.outcomes import IMPORT_CALLS

MINUTE, HOUR, DAY = 60, 3600, 86_400


def about(seconds: float) -> str:
    """A duration the way a person says it: ``about 12 min``, ``about 34 h 18 min``, ``about 3 d 4 h``.

    Two units at most, the smaller one rounded; seconds up to 90 s (``under 1 s`` below one),
    minutes up to an hour, hours up to two days, then days.
    """
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < HOUR - 30:
        return f"about {round(seconds / MINUTE)} min"
    if seconds < 2 * DAY:
        hours, minutes = divmod(round(seconds / MINUTE), 60)
        return f"about {hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(round(seconds / HOUR), 24)
    return f"about {days} d" + (f" {hours} h" if hours else "")


def per_second(rate: float) -> str:
    """A rate as ``100/s``, ``1,500/s`` or ``0.5/s``."""
    return f"{rate:,.0f}/s" if rate >= 10 else f"{rate:g}/s"


def sending_plan(requests: int, rate_limit: float, max_in_flight: int, processes: int = 1,
                 rate_limiter_address: str | None = None) -> str:
    """How long sending ``requests`` takes at ``rate_limit`` per second for the whole job.

    Every attempt counts against the rate, so retries add to the time. The rate holds only while
    the requests in flight (``processes`` × ``max_in_flight``) are enough for it: at 100/s and 32 in
    flight, while Woopra answers within 320 ms. The line states that bound instead of assuming a
    latency. With an Envoy Rate Limit Service the rate is its own, unknown here.
    """
    noun = "request" if requests == 1 else "requests"
    if requests == 0:
        return "plan: 0 requests to send"
    if rate_limiter_address:
        return (f"plan: {requests:,} {noun} at the rate of the Envoy Rate Limit Service at {rate_limiter_address} "
                f"(--rate_limit does not apply)")
    in_flight = processes * max_in_flight
    within_ms = 1000.0 * in_flight / rate_limit
    latency = f"{within_ms:,.0f}" if within_ms >= 10 else f"{within_ms:.2g}"
    concurrency = f"{processes} processes x {max_in_flight}" if processes > 1 else f"{max_in_flight}"
    return (f"plan: {requests:,} {noun} at {per_second(rate_limit)}: {about(requests / rate_limit)} "
            f"(without retries; {concurrency} in flight keep that rate while Woopra answers within "
            f"{latency} ms)")


def plan_for_job(requests: int, options: PipelineOptions, job: JobSettings) -> str:
    """``sending_plan`` with the job's --rate_limit (the whole job's), --max_in_flight and process count."""
    opts = options.view_as(WoopraOptions)
    processes = (number_option(opts, "rate_limit_processes") if opts.rate_limit_processes
                 else worker_processes(options))
    return sending_plan(requests, number_option(opts, "rate_limit"), job.delivery.max_in_flight, processes,
                        job.delivery.rate_limiter_address)


def calls_plan(calls: int, limits: Sequence[CallLimit]) -> str:
    """How long ``calls`` Import API calls take under the call budget: ``412 calls: about 1 min at 300/min``.

    The budget lets calls go in a burst while every window allows them (transforms/delivery/call_budget.py),
    so the time is when the last call may start; retries and the halving of rejected bodies add calls.
    """
    noun = "call" if calls == 1 else "calls"
    if calls == 0:
        return "plan: 0 import calls to make"
    budget = ", ".join(limit.label() for limit in limits)
    return (f"plan: {calls:,} import {noun}: {about(seconds_for(calls, limits))} at "
            f"{binding_limit(calls, limits).label()} (budget {budget} per process; without retries or splits)")


def import_plan(summary: Mapping[str, Any], job: JobSettings) -> str:
    """``calls_plan`` for a dry run of ``--sink import``: its bodies, at the job's call budget."""
    assert job.imports is not None
    return calls_plan(int(summary.get(IMPORT_CALLS, 0)), job.imports.delivery.limits)
