"""Beam counters named after the summary keys (SPEC §8), in one namespace."""

from __future__ import annotations

from apache_beam.metrics import Metrics
from apache_beam.metrics.metricbase import Counter

NAMESPACE = "woopra"


def counter(name: str) -> Counter:
    """The counter that feeds summary key ``name``."""
    return Metrics.counter(NAMESPACE, name)
