"""Counters named after the summary keys (docs/behaviour.md#summary): Beam metrics plus an in-process tally.

The Beam counter is what a Dataflow user sees in the console and what a batch summary reads.
The tally exists because Beam's streaming DirectRunner drops counter updates made after its
first Pub/Sub bundle (seen with Beam 2.77), so local streaming progress reads the tally.
"""

from __future__ import annotations

import threading
from collections import Counter as _Tally

from apache_beam.metrics import Metrics

NAMESPACE = "woopra"

_TALLY: _Tally[str] = _Tally()
_TALLY_LOCK = threading.Lock()


class SummaryCounter:
    """Counts one summary key, in Beam metrics and in this process's tally."""

    def __init__(self, name: str) -> None:
        self.name = str(name)  # an Outcome is a str; keep the plain value
        self._metric = Metrics.counter(NAMESPACE, self.name)

    def inc(self, n: int = 1) -> None:
        """Add ``n``."""
        self._metric.inc(n)
        with _TALLY_LOCK:
            _TALLY[self.name] += n


def counter(name: str) -> SummaryCounter:
    """The counter that feeds summary key ``name``."""
    return SummaryCounter(name)


def process_tally() -> dict[str, int]:
    """What this process has counted so far (pipelines run in this process only)."""
    with _TALLY_LOCK:
        return dict(_TALLY)
