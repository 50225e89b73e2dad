"""Streaming progress: a one-line report of the job's counters at a fixed interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from apache_beam.runners.runner import PipelineResult, PipelineState

log = logging.getLogger("pipeline.progress")

FILTERED_KEYS = ("consent_denied", "consent_missing", "unsupported", "dropped_unmapped", "skipped_replay")
DEAD_LETTER_KEYS = ("invalid", "too_large", "rejected", "retries_exhausted")
DELIVERED_KEYS = ("delivered_200", "delivered_202", "would_send")


def progress_line(counts: Mapping[str, int], previous: Mapping[str, int], seconds: float) -> str:
    """``read=… delivered=… dead_lettered=… filtered=… retried=… | … read/s, … delivered/s``."""

    def total(keys: tuple[str, ...], source: Mapping[str, int]) -> int:
        return sum(int(source.get(key, 0)) for key in keys)

    read, delivered = int(counts.get("read", 0)), total(DELIVERED_KEYS, counts)
    read_rate = (read - int(previous.get("read", 0))) / seconds if seconds > 0 else 0.0
    delivered_rate = (delivered - total(DELIVERED_KEYS, previous)) / seconds if seconds > 0 else 0.0
    return (f"progress: read={read} delivered={delivered} dead_lettered={total(DEAD_LETTER_KEYS, counts)} "
            f"filtered={total(FILTERED_KEYS, counts)} retried={int(counts.get('retried_requests', 0))} "
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
