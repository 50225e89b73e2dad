"""Slices of event time, ``--start`` / ``--end`` (docs/backfill.md#slices-of-event-time) (pure, no Beam)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


def parse_utc_time(text: str) -> int:
    """An ISO 8601 date (``2024-03-01``) or date-time, in UTC unless it says otherwise → Unix ms.

    Raises ``ValueError`` naming what is wrong.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            parsed = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        else:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or date-time (e.g. 2024-03-01 or "
                         f"2024-03-01T12:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True)
class TimeRange:
    """Event times from ``start_ms`` (inclusive) to ``end_ms`` (exclusive); None: unbounded."""

    start_ms: int | None = None
    end_ms: int | None = None

    def __post_init__(self) -> None:
        if self.start_ms is not None and self.end_ms is not None and self.end_ms <= self.start_ms:
            raise ValueError("--end must be after --start")

    @property
    def bounded(self) -> bool:
        """True when either end is set (the job has a slice to apply)."""
        return self.start_ms is not None or self.end_ms is not None

    def contains(self, timestamp_ms: int) -> bool:
        """Whether an event at ``timestamp_ms`` is in the slice."""
        return ((self.start_ms is None or timestamp_ms >= self.start_ms)
                and (self.end_ms is None or timestamp_ms < self.end_ms))
