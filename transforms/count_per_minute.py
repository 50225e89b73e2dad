"""Report counts (``--report``): sent and dead-lettered events per minute of event time.

A side branch of the graph: it keys each sent request (or delivered outcome) and each dead letter
by the minute of its event time, keys each dead letter once more by its reason and error, counts
the keys and writes them as JSON lines for the launcher, which builds the HTML run report from
them once the job has finished.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam

from transforms.rules.dead_letters import DeadLetter, error_signature
from transforms.rules.events import parse_timestamp_ms

COUNTS_SUFFIX = ".counts"  # the counts folder beside the report
MINUTE = "minute"  # record kind: one (minute, outcome, reason) count
ERROR = "error"  # record kind: one (reason, status, error) count
SENT = "sent"  # outcome: delivered, or would be sent in a dry run
DEAD_LETTER = "dead_letter"
# Element timestamps outside these bounds are not event times (Beam's MIN_TIMESTAMP for inputs
# read without one, e.g. a line that is not JSON).
_FIRST_MS, _LAST_MS = 0, 253_402_300_799_000  # 1970-01-01 .. 9999-12-31


def minute_of(timestamp_ms: int | None) -> str:
    """``2026-03-02T09:21Z`` for an event time in ms; empty when there is no usable event time."""
    if timestamp_ms is None or not _FIRST_MS <= timestamp_ms <= _LAST_MS:
        return ""
    return datetime.fromtimestamp(timestamp_ms // 60_000 * 60, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def _element_ms(timestamp: Any) -> int | None:
    micros = getattr(timestamp, "micros", None)
    return micros // 1000 if isinstance(micros, int) and _FIRST_MS * 1000 <= micros <= _LAST_MS * 1000 else None


def dead_letter_time_ms(dead_letter: DeadLetter, element_ms: int | None) -> int | None:
    """A dead letter's event time: its element timestamp, else its event's own ``timestamp``."""
    if element_ms is not None:
        return element_ms
    event = dead_letter.event
    if isinstance(event, dict) and event.get("timestamp") is not None:
        try:
            timestamp_ms = parse_timestamp_ms(event["timestamp"])
        except (ValueError, OverflowError, TypeError):
            return None
        return timestamp_ms if _FIRST_MS <= timestamp_ms <= _LAST_MS else None
    return None


def counts_directory(report_path: str) -> str:
    """Where the graph writes the report's counts: beside the report, removed after the run."""
    return report_path + COUNTS_SUFFIX


def counts_prefix(report_path: str) -> str:
    """The shard prefix the graph's ``CountPerMinute`` writes to."""
    return counts_directory(report_path) + "/minute_counts"


class _KeySentFn(beam.DoFn):
    def process(self, element: Any, timestamp=beam.DoFn.TimestampParam) -> Iterator[tuple[str, ...]]:
        yield (MINUTE, minute_of(_element_ms(timestamp)), SENT, "")


class _KeyDeadLetterFn(beam.DoFn):
    def process(self, dead_letter: DeadLetter, timestamp=beam.DoFn.TimestampParam) -> Iterator[tuple[str, ...]]:
        minute = minute_of(dead_letter_time_ms(dead_letter, _element_ms(timestamp)))
        yield (MINUTE, minute, DEAD_LETTER, dead_letter.reason)
        status = "" if dead_letter.status is None else str(dead_letter.status)
        yield (ERROR, dead_letter.reason, status, error_signature(dead_letter.error))


def count_record(key_count: tuple[tuple[str, ...], int]) -> dict[str, Any]:
    """A counted key as the JSON object the report reads."""
    key, count = key_count
    if key[0] == MINUTE:
        return {"kind": MINUTE, "minute": key[1] or None, "outcome": key[2], "reason": key[3] or None,
                "count": count}
    return {"kind": ERROR, "reason": key[1], "status": int(key[2]) if key[2] else None, "error": key[3],
            "count": count}


class CountPerMinute(beam.PTransform):
    """Count sent events and dead letters per minute of event time; write JSON lines at ``prefix``.

    Applied to ``(sent, dead_letters)``: the delivered outcomes (or dry-run requests) and the
    ``DeadLetter`` records, both timestamped with their event time. The counts go beside the
    report at ``report_path`` (``counts_prefix``), where the report reads them after the run.
    """

    def __init__(self, report_path: str) -> None:
        super().__init__()
        self.prefix = counts_prefix(report_path)

    def expand(self, pcolls) -> beam.pvalue.PDone:  # (delivered, dead letters): Beam takes a tuple hint for a wrong one
        sent, dead_letters = pcolls
        return (
            (sent | "KeySent" >> beam.ParDo(_KeySentFn()),
             dead_letters | "KeyDeadLetters" >> beam.ParDo(_KeyDeadLetterFn()))
            | "Together" >> beam.Flatten()
            | "Count" >> beam.combiners.Count.PerElement()
            | "ToJson" >> beam.Map(lambda kc: json.dumps(count_record(kc), ensure_ascii=False))
            | "Write" >> beam.io.WriteToText(self.prefix, file_name_suffix=".jsonl")
        )
