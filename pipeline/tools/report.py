"""The HTML run report (``--report FILE``): one self-contained page, no scripts, no external files.

The graph's ``CountPerMinute`` branch (transforms/count_per_minute.py) writes its counts as JSON
lines next to the report; once the job has finished the launcher reads them, renders the page
with the summary's numbers and an inline SVG chart of events per minute of event time, and
removes them. Error messages are redacted (docs/behaviour.md, Privacy): the page is meant to be shared.

This module computes the page's values and the chart's geometry; the markup is the Jinja2 template
``report.html`` beside it, which HTML-escapes every value.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pipeline.summary import DRY_RUN_KEYS, OUTCOME_KEYS, outcome_groups, percent_of_read
from pipeline.tools.redact import redact_text
from transforms.count_per_minute import DEAD_LETTER, MINUTE, SENT, counts_directory, counts_prefix

# Chart buckets in minutes: the finest that keeps the chart readable (at most MAX_BARS bars).
BUCKET_MINUTES = (1, 5, 15, 60, 360, 1440, 10080)
MAX_BARS = 120
TOP_ERRORS = 10
SENT_COLOUR, DEAD_COLOUR = "#2e7d32", "#c62828"
TEMPLATE = "report.html"  # beside this module; shipped as package data (setup.py)


@dataclass(frozen=True)
class ErrorCount:
    """How often one dead-letter error occurred."""

    reason: str
    status: int | None
    error: str
    count: int


@dataclass
class ReportCounts:
    """What the graph's report branch counted."""

    sent_per_minute: Counter[str] = field(default_factory=Counter)  # "2026-03-02T09:21Z" → count
    dead_per_minute: Counter[str] = field(default_factory=Counter)
    sent_without_time: int = 0
    dead_without_time: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # dead letters by reason (docs/behaviour.md, Dead letters)
    errors: list[ErrorCount] = field(default_factory=list)


def parse_counts(lines: Iterable[str]) -> ReportCounts:
    """Read the JSON lines written by ``CountPerMinute``."""
    counts = ReportCounts()
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if record["kind"] == MINUTE:
            minute, count = record.get("minute"), int(record["count"])
            dead = record["outcome"] == DEAD_LETTER
            if dead:
                counts.reasons[str(record.get("reason"))] += count
            if minute:
                (counts.dead_per_minute if dead else counts.sent_per_minute)[minute] += count
            elif dead:
                counts.dead_without_time += count
            elif record["outcome"] == SENT:
                counts.sent_without_time += count
        else:
            counts.errors.append(ErrorCount(record["reason"], record.get("status"), record["error"],
                                            int(record["count"])))
    counts.errors.sort(key=lambda e: (-e.count, e.reason, e.error))
    return counts


def read_counts(report_path: str) -> ReportCounts:
    """Read every counts shard the job wrote for ``report_path``."""
    from apache_beam.io.filesystems import FileSystems

    lines: list[str] = []
    for match in FileSystems.match([counts_prefix(report_path) + "*"]):
        for metadata in match.metadata_list:
            with FileSystems.open(metadata.path) as handle:
                lines += handle.read().decode("utf-8").splitlines()
    return parse_counts(lines)


def clear_counts(report_path: str) -> None:
    """Remove the counts of a previous or finished run (they are only an intermediate)."""
    from apache_beam.io.filesystems import FileSystems

    # In Cloud Storage a folder is only a prefix of its files' names: delete the files themselves.
    shards = [metadata.path for match in FileSystems.match([counts_prefix(report_path) + "*"])
              for metadata in match.metadata_list]
    if shards:
        FileSystems.delete(shards)
    directory = counts_directory(report_path)
    if FileSystems.exists(directory):
        FileSystems.delete([directory])


# ----- the chart ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bar:
    """One bucket of the chart."""

    start_minute: int  # Unix minutes
    sent: int
    dead: int


@dataclass(frozen=True)
class Chart:
    """The bars to draw: ``continuous`` when empty buckets are drawn too, else only non-empty ones."""

    bucket_minutes: int
    continuous: bool
    bars: list[Bar]


def _unix_minute(minute: str) -> int:
    stamp = datetime.strptime(minute, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
    return int(stamp.timestamp()) // 60


def chart_bars(sent: Mapping[str, int], dead: Mapping[str, int]) -> Chart:
    """Choose the finest bucket (1 minute first) that gives at most MAX_BARS bars.

    Empty buckets are drawn when the whole time range fits; otherwise only buckets with events
    are drawn (a backfill spread over days still shows its busy minutes).
    """
    per_minute: dict[int, list[int]] = {}
    for counts, slot in ((sent, 0), (dead, 1)):
        for name, count in counts.items():
            per_minute.setdefault(_unix_minute(name), [0, 0])[slot] += count
    if not per_minute:
        return Chart(1, True, [])
    for size in BUCKET_MINUTES:
        buckets: dict[int, list[int]] = {}
        for minute, (s, d) in per_minute.items():
            bucket = buckets.setdefault(minute // size * size, [0, 0])
            bucket[0] += s
            bucket[1] += d
        first, last = min(buckets), max(buckets)
        if (last - first) // size + 1 <= MAX_BARS:
            return Chart(size, True, [Bar(start, *buckets.get(start, (0, 0)))
                                      for start in range(first, last + 1, size)])
        if len(buckets) <= MAX_BARS or size == BUCKET_MINUTES[-1]:
            return Chart(size, False, [Bar(start, *buckets[start]) for start in sorted(buckets)])
    raise AssertionError("unreachable")


def bucket_name(minutes: int) -> str:
    """``minute``, ``5 minutes``, ``hour``, ``day``..."""
    names = {1: "minute", 60: "hour", 1440: "day", 10080: "week"}
    return names.get(minutes, f"{minutes // 60} hours" if minutes % 60 == 0 else f"{minutes} minutes")


def _label(start_minute: int, bucket_minutes: int, same_day: bool) -> str:
    stamp = datetime.fromtimestamp(start_minute * 60, tz=UTC)
    if bucket_minutes >= 1440:
        return stamp.strftime("%Y-%m-%d")
    return stamp.strftime("%H:%M" if same_day else "%m-%d %H:%M")


def _nice_ceiling(value: int) -> tuple[int, int]:
    """An axis maximum of at least ``value`` and its tick step (1, 2 or 5 × 10^k, at most 5 ticks)."""
    value = max(value, 1)
    for power in range(0, 16):
        for base in (1, 2, 5):
            step = base * 10**power
            if math.ceil(value / step) <= 5:
                return step * math.ceil(value / step), step
    return value, value


@dataclass(frozen=True)
class Tick:
    """One grid line of the chart's count axis."""

    value: int
    y: float


@dataclass(frozen=True)
class DrawnBar:
    """One bar where it is drawn: its sent and dead-lettered rectangles, tooltip and axis label."""

    x: float
    width: float
    sent_y: float
    sent_height: float
    dead_y: float
    dead_height: float
    tooltip: str
    label: str | None  # only every few bars are labelled, so that labels do not overlap
    label_x: float
    gap_x: float | None  # a dashed line before this bar: time with no events left out


@dataclass(frozen=True)
class ChartLayout:
    """The chart's geometry in SVG units: what the template draws, computed from numbers only."""

    width: int
    height: int
    left: int
    right: int
    top: int
    base: int  # the y of the time axis
    aria_label: str
    ticks: list[Tick]
    bars: list[DrawnBar]


def chart_layout(chart: Chart, sent_label: str) -> ChartLayout:
    """Place the chart's stacked bars (sent below, dead-lettered above), grid lines and labels."""
    width, height, left, right, top, bottom = 960, 300, 52, 12, 14, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    bars = chart.bars
    highest, step = _nice_ceiling(max((b.sent + b.dead for b in bars), default=0))
    scale = plot_h / highest
    slot = plot_w / max(len(bars), 1)
    bar_w = max(1.0, min(slot * 0.72, 48.0))
    days = {b.start_minute // 1440 for b in bars}
    label_every = max(1, math.ceil(len(bars) / 24))
    base = top + plot_h
    drawn = []
    for i, bar in enumerate(bars):
        x = left + i * slot + (slot - bar_w) / 2
        label = _label(bar.start_minute, chart.bucket_minutes, len(days) == 1)
        sent_h, dead_h = bar.sent * scale, bar.dead * scale
        gap = not chart.continuous and i and bar.start_minute - bars[i - 1].start_minute > chart.bucket_minutes
        drawn.append(DrawnBar(
            x=x, width=bar_w, sent_y=base - sent_h, sent_height=sent_h, dead_y=base - sent_h - dead_h,
            dead_height=dead_h, tooltip=f"{label} UTC: {bar.sent:,} {sent_label}, {bar.dead:,} dead-lettered",
            label=label if i % label_every == 0 else None, label_x=x + bar_w / 2,
            gap_x=left + i * slot if gap else None))
    return ChartLayout(
        width=width, height=height, left=left, right=right, top=top, base=base,
        aria_label=f"{sent_label} and dead-lettered events per {bucket_name(chart.bucket_minutes)}",
        ticks=[Tick(tick, base - tick * scale) for tick in range(0, highest + 1, step)], bars=drawn)


# ----- the page -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunDescription:
    """What the page says about the run itself."""

    source: str
    project: str
    endpoint: str
    dead_letter: str
    dry_run: str | None
    generated_at: str


@dataclass(frozen=True)
class Card:
    """One of the numbers at the top of the page."""

    kind: str  # the CSS class that colours it: sent, dead, filtered, or "" for none
    label: str
    value: str
    rate: str


@dataclass(frozen=True)
class CountRow:
    """A table row: a summary key or dead-letter reason, its count and its share of what was read."""

    name: str
    count: int
    share: str


@dataclass(frozen=True)
class ErrorRow:
    """A row of the top errors: the error text already redacted."""

    count: int
    reason: str
    status: str
    error: str


def _card(kind: str, label: str, value: str, rate: str = "") -> Card:
    return Card("" if value == "0" else kind, label, value, rate)  # a zero is not news: no colour


def _rate(count: int, read: int) -> str:
    share = percent_of_read(count, read)
    return f"{share} of read" if share else "—"


def _chart_notes(chart: Chart, counts: ReportCounts) -> list[str]:
    notes = []
    if chart.bucket_minutes > 1:
        notes.append(f"The events span too long a time for a bar per minute: one bar per "
                     f"{bucket_name(chart.bucket_minutes)}.")
    if not chart.continuous:
        notes.append("Bars are drawn only where there were events; a dashed line marks a gap in time.")
    if counts.dead_without_time or counts.sent_without_time:
        notes.append(f"{counts.dead_without_time + counts.sent_without_time:,} events have no event time "
                     "(a line that is not JSON, or a bad timestamp) and are not in the chart.")
    notes.append("Times are UTC. Hover a bar for its counts.")
    return notes


def page_values(summary: Mapping[str, Any], counts: ReportCounts, run: RunDescription) -> dict[str, Any]:
    """Everything the template shows, as plain values: the template escapes and lays them out."""
    read = int(summary["read"])
    dry_run = bool(summary.get("dry_run"))
    sent_label = "would send" if dry_run else "delivered"
    (_, sent_total, _), (_, dead_total, _), (_, filtered_total, filtered_parts) = outcome_groups(summary)
    retried = int(summary.get("retried_requests", 0))
    chart = chart_bars(counts.sent_per_minute, counts.dead_per_minute)
    keys = list(OUTCOME_KEYS) + (list(DRY_RUN_KEYS) if dry_run else [])
    return {
        "run": run,
        "read": read,
        "accounted": int(summary["accounted"]),
        "balanced": bool(summary.get("balanced")),
        "dry_run": dry_run,
        "sent_label": sent_label,
        "sent_total": sent_total,
        "cards": [
            _card("", "Read", f"{read:,}", "events in the input"),
            _card("sent", "Would send" if dry_run else "Delivered", f"{sent_total:,}", _rate(sent_total, read)),
            _card("dead", "Dead-lettered", f"{dead_total:,}", _rate(dead_total, read)),
            _card("filtered", "Filtered", f"{filtered_total:,}", _rate(filtered_total, read)),
            _card("", "Retried requests", f"{retried:,}", "extra attempts"),
            _card("", "Throughput", f"{float(summary.get('events_per_second', 0)):,.1f}",
                  f"events/s, {float(summary.get('elapsed_seconds', 0)):,.1f} s run"),
        ],
        "bucket": bucket_name(chart.bucket_minutes),
        "chart": chart_layout(chart, sent_label) if chart.bars else None,
        "chart_notes": _chart_notes(chart, counts),
        "sent_colour": SENT_COLOUR,
        "dead_colour": DEAD_COLOUR,
        "outcomes": [CountRow(key, int(summary.get(key, 0)), percent_of_read(int(summary.get(key, 0)), read))
                     for key in keys],
        "retried_requests": retried,
        "filtered_detail": ", ".join(f"{key} {count:,}" for key, count in filtered_parts) or "none",
        "reasons": [CountRow(reason, count, percent_of_read(count, read))
                    for reason, count in counts.reasons.most_common()],
        "errors": [ErrorRow(e.count, e.reason, "—" if e.status is None else str(e.status), redact_text(e.error))
                   for e in counts.errors[:TOP_ERRORS]],
    }


@cache
def _templates() -> Environment:
    """The page's Jinja2 environment: every value is HTML-escaped unless the template says otherwise."""
    environment = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)
    environment.filters["count"] = lambda number: f"{number:,}"  # 12,345
    environment.filters["coordinate"] = lambda number: f"{number:.1f}"  # SVG units, one decimal
    return environment


def render_report(summary: Mapping[str, Any], counts: ReportCounts, run: RunDescription) -> str:
    """The whole page: numbers, the per-minute chart, dead letters by reason and error."""
    return _templates().get_template(TEMPLATE).render(page_values(summary, counts, run))


def write_run_report(job: Any, summary: Mapping[str, Any]) -> None:
    """Build the page for a finished batch run from its counts, write it, remove the counts."""
    from apache_beam.io.filesystems import FileSystems

    counts = read_counts(job.report)
    run = RunDescription(
        source=job.source, project=job.woopra.project, endpoint=job.woopra.endpoint, dead_letter=job.dead_letter,
        dry_run=job.dry_run, generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    with FileSystems.create(job.report, mime_type="text/html") as handle:
        handle.write(render_report(summary, counts, run).encode("utf-8"))
    clear_counts(job.report)
