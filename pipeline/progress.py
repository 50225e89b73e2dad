"""Streaming progress: a one-line report of the job's counters at a fixed interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from apache_beam.runners.runner import PipelineResult, PipelineState

from transforms.rules.outcomes import READ, RETRIED_REQUESTS, Group, Outcome

log = logging.getLogger("pipeline.progress")


def _keys(group: Group) -> tuple[str, ...]:
    return tuple(str(outcome) for outcome in Outcome if outcome.group is group)


def progress_line(counts: Mapping[str, int], previous: Mapping[str, int], seconds: float) -> str:
    """``read=… delivered=… dead_lettered=… filtered=… retried=… | … read/s, … delivered/s``."""

    def total(group: Group, source: Mapping[str, int]) -> int:
        return sum(int(source.get(key, 0)) for key in _keys(group))

    read, delivered = int(counts.get(READ, 0)), total(Group.SENT, counts)
    read_rate = (read - int(previous.get(READ, 0))) / seconds if seconds > 0 else 0.0
    delivered_rate = (delivered - total(Group.SENT, previous)) / seconds if seconds > 0 else 0.0
    return (f"progress: read={read} delivered={delivered} dead_lettered={total(Group.DEAD_LETTERED, counts)} "
            f"filtered={total(Group.FILTERED, counts)} retried={int(counts.get(RETRIED_REQUESTS, 0))} "
            f"| {read_rate:.1f} read/s, {delivered_rate:.1f} delivered/s")


def watch(
    result: PipelineResult, interval: float, stop: threading.Event, counts: Callable[[], dict[str, int]]
) -> dict[str, int]:
    """Log progress every ``interval`` seconds until the job ends or ``stop`` is set."""
    previous: dict[str, int] = {}
    last = time.monotonic()
    while not stop.wait(timeout=min(1.0, interval)):
        if PipelineState.is_terminal(result.state):
            break
        now = time.monotonic()
        if now - last >= interval:
            current = counts()
            log.info(progress_line(current, previous, now - last))
            previous, last = current, now
    final = counts()
    log.info(progress_line(final, previous, time.monotonic() - last))
    return final
