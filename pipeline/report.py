"""The HTML run report (``--report FILE``): one self-contained page, no scripts, no external files.

The graph's ``CountPerMinute`` branch (transforms/minute_counts.py) writes its counts as JSON
lines next to the report; once the job has finished the launcher reads them, renders the page
with the summary's numbers and an inline SVG chart of events per minute of event time, and
removes them. Error messages are redacted (SPEC §9): the page is meant to be shared.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any

from pipeline.redact import redact_text
from pipeline.summary import DRY_RUN_KEY, OUTCOME_KEYS, outcome_groups, percent_of_read
from transforms.minute_counts import DEAD_LETTER, MINUTE, SENT

COUNTS_SUFFIX = ".counts"
# Chart buckets in minutes: the finest that keeps the chart readable (at most MAX_BARS bars).
BUCKET_MINUTES = (1, 5, 15, 60, 360, 1440, 10080)
MAX_BARS = 120
TOP_ERRORS = 10
SENT_COLOUR, DEAD_COLOUR = "#2e7d32", "#c62828"


def counts_directory(report_path: str) -> str:
    """Where the graph writes the report's counts: beside the report, removed after the run."""
    return report_path + COUNTS_SUFFIX


def counts_prefix(report_path: str) -> str:
    """The shard prefix the graph's ``CountPerMinute`` writes to."""
    return counts_directory(report_path) + "/minute_counts"


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
    reasons: Counter[str] = field(default_factory=Counter)  # dead letters by reason (SPEC §7)
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


def render_chart_svg(chart: Chart, sent_label: str) -> str:
    """The chart as inline SVG: stacked bars, sent below and dead-lettered above."""
    width, height, left, right, top, bottom = 960, 300, 52, 12, 14, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    bars = chart.bars
    highest, step = _nice_ceiling(max((b.sent + b.dead for b in bars), default=0))
    scale = plot_h / highest
    slot = plot_w / max(len(bars), 1)
    bar_w = max(1.0, min(slot * 0.72, 48.0))
    days = {b.start_minute // 1440 for b in bars}
    label_every = max(1, math.ceil(len(bars) / 24))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(sent_label)} and dead-lettered events per {bucket_name(chart.bucket_minutes)}" '
             f'class="chart">']
    for tick in range(0, highest + 1, step):
        y = top + plot_h - tick * scale
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" class="tick" text-anchor="end">{tick:,}</text>')
    for i, bar in enumerate(bars):
        x = left + i * slot + (slot - bar_w) / 2
        label = _label(bar.start_minute, chart.bucket_minutes, len(days) == 1)
        sent_h, dead_h = bar.sent * scale, bar.dead * scale
        base = top + plot_h
        tooltip = f"{label} UTC: {bar.sent:,} {sent_label}, {bar.dead:,} dead-lettered"
        parts.append(f"<g><title>{escape(tooltip)}</title>")
        if bar.sent:
            parts.append(f'<rect x="{x:.1f}" y="{base - sent_h:.1f}" width="{bar_w:.1f}" height="{sent_h:.1f}" '
                         f'fill="{SENT_COLOUR}"/>')
        if bar.dead:
            parts.append(f'<rect x="{x:.1f}" y="{base - sent_h - dead_h:.1f}" width="{bar_w:.1f}" '
                         f'height="{dead_h:.1f}" fill="{DEAD_COLOUR}"/>')
        parts.append("</g>")
        if not chart.continuous and i and bar.start_minute - bars[i - 1].start_minute > chart.bucket_minutes:
            gap_x = left + i * slot
            parts.append(f'<line x1="{gap_x:.1f}" x2="{gap_x:.1f}" y1="{top}" y2="{base}" class="gap"/>')
        if i % label_every == 0:
            cx = x + bar_w / 2
            parts.append(f'<text x="{cx:.1f}" y="{base + 14}" class="tick" text-anchor="end" '
                         f'transform="rotate(-40 {cx:.1f} {base + 14})">{escape(label)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>')
    parts.append("</svg>")
    return "\n".join(parts)


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


CSS = (f":root {{ --ink: #1d2430; --muted: #5b6574; --line: #d9dee5; --sent: {SENT_COLOUR}; "
       f"--dead: {DEAD_COLOUR}; --filtered: #8a6d00; }}") + """
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #f5f7fa; }
main { max-width: 1040px; margin: 0 auto; padding: 28px 24px 40px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; }
.meta { color: var(--muted); margin: 0; }
.meta code { font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin-top: 22px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 28px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .rate { color: var(--muted); font-size: 13px; }
.card.sent .value { color: var(--sent); } .card.dead .value { color: var(--dead); }
.card.filtered .value { color: var(--filtered); }
.check { display: inline-block; margin-top: 14px; padding: 3px 10px; border-radius: 12px; font-size: 13px; }
.check.ok { background: #e3f4e4; color: #1b5e20; } .check.bad { background: #fde3e3; color: #8e1b1b; }
section.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.legend span { display: inline-block; margin-right: 18px; font-size: 13px; color: var(--muted); }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px;
            vertical-align: -1px; }
.chart { width: 100%; height: auto; display: block; }
.chart .grid { stroke: #eceff3; } .chart .axis { stroke: #9aa3af; }
.chart .gap { stroke: #9aa3af; stroke-dasharray: 3 3; }
.chart .tick { font-size: 11px; fill: var(--muted); }
.note { color: var(--muted); font-size: 13px; margin: 8px 0 0; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
th, td { text-align: left; padding: 6px 12px; border-bottom: 1px solid var(--line); }
th { font-size: 13px; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.group td { font-weight: 650; background: #fafbfc; }
tr.zero td { color: #9aa3af; }
td code { font-size: 13px; word-break: break-word; }
footer { margin-top: 28px; color: var(--muted); font-size: 13px; }
"""


def _card(kind: str, label: str, value: str, rate: str = "") -> str:
    kind = "" if value == "0" else kind  # a zero is not news: no colour
    return (f'<div class="card {kind}"><div class="label">{escape(label)}</div>'
            f'<div class="value">{escape(value)}</div><div class="rate">{escape(rate)}</div></div>')


def _outcome_rows(summary: Mapping[str, Any]) -> list[str]:
    read = int(summary["read"])
    keys = list(OUTCOME_KEYS) + ([DRY_RUN_KEY] if summary.get("dry_run") else [])
    rows = [f'<tr class="group"><td>read</td><td class="num">{read:,}</td><td class="num"></td></tr>']
    for key in keys:
        count = int(summary.get(key, 0))
        rows.append(f'<tr class="{"zero" if not count else ""}"><td><code>{key}</code></td>'
                    f'<td class="num">{count:,}</td><td class="num">{percent_of_read(count, read)}</td></tr>')
    rows.append(f'<tr><td><code>retried_requests</code> (extra attempts, not an outcome)</td>'
                f'<td class="num">{int(summary.get("retried_requests", 0)):,}</td><td class="num"></td></tr>')
    return rows


def _reason_rows(counts: ReportCounts, read: int) -> list[str]:
    return [f'<tr><td><code>{escape(reason)}</code></td><td class="num">{count:,}</td>'
            f'<td class="num">{percent_of_read(count, read)}</td></tr>'
            for reason, count in counts.reasons.most_common()]


def _error_rows(errors: Sequence[ErrorCount]) -> list[str]:
    return [f'<tr><td class="num">{e.count:,}</td><td><code>{escape(e.reason)}</code></td>'
            f'<td class="num">{e.status if e.status is not None else "—"}</td>'
            f'<td><code>{escape(redact_text(e.error))}</code></td></tr>' for e in errors[:TOP_ERRORS]]


def render_report(summary: Mapping[str, Any], counts: ReportCounts, run: RunDescription) -> str:
    """The whole page: numbers, the per-minute chart, dead letters by reason and error."""
    read = int(summary["read"])
    dry_run = bool(summary.get("dry_run"))
    sent_label = "would send" if dry_run else "delivered"
    (_, sent_total, _), (_, dead_total, _), (_, filtered_total, filtered_parts) = outcome_groups(summary)
    balanced = bool(summary.get("balanced"))
    cards = [
        _card("", "Read", f"{read:,}", "events in the input"),
        _card("sent", "Would send" if dry_run else "Delivered", f"{sent_total:,}", _rate(sent_total, read)),
        _card("dead", "Dead-lettered", f"{dead_total:,}", _rate(dead_total, read)),
        _card("filtered", "Filtered", f"{filtered_total:,}", _rate(filtered_total, read)),
        _card("", "Retried requests", f"{int(summary.get('retried_requests', 0)):,}", "extra attempts"),
        _card("", "Throughput", f"{float(summary.get('events_per_second', 0)):,.1f}",
              f"events/s, {float(summary.get('elapsed_seconds', 0)):,.1f} s run"),
    ]
    check = (f'<span class="check ok">accounting: read {read:,} = outcomes {int(summary["accounted"]):,} (ok)</span>'
             if balanced else
             f'<span class="check bad">accounting: read {read:,} ≠ outcomes {int(summary["accounted"]):,} '
             f'(MISMATCH)</span>')

    chart = chart_bars(counts.sent_per_minute, counts.dead_per_minute)
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
    chart_html = (render_chart_svg(chart, sent_label) if chart.bars
                  else '<p class="note">No event in this run had an event time to chart.</p>')

    filtered_detail = ", ".join(f"{key} {count:,}" for key, count in filtered_parts) or "none"
    mode = f"dry run, requests written to <code>{escape(run.dry_run)}</code>" if run.dry_run else (
        f"sent to <code>{escape(run.endpoint)}</code>")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Woopra delivery report: {read:,} events, {sent_total:,} {sent_label}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>Woopra delivery report{" (dry run)" if dry_run else ""}</h1>
<p class="meta">Project <strong>{escape(run.project)}</strong> · input <code>{escape(run.source)}</code> · {mode}</p>
<p class="meta">Generated {escape(run.generated_at)} · dead letters under <code>{escape(run.dead_letter)}</code></p>
<div class="cards">
{chr(10).join(cards)}
</div>
{check}

<h2>Events per {bucket_name(chart.bucket_minutes)} of event time</h2>
<section class="panel">
<div class="legend"><span><i style="background:{SENT_COLOUR}"></i>{sent_label}</span>\
<span><i style="background:{DEAD_COLOUR}"></i>dead-lettered</span></div>
{chart_html}
<p class="note">{" ".join(escape(n) for n in notes)}</p>
</section>

<h2>Outcomes</h2>
<table>
<thead><tr><th>Summary key</th><th class="num">Events</th><th class="num">Of read</th></tr></thead>
<tbody>
{chr(10).join(_outcome_rows(summary))}
</tbody>
</table>
<p class="note">Filtered (counted, not sent, not dead letters): {escape(filtered_detail)}.</p>

<h2>Dead letters by reason</h2>
{_table_or_none(["Reason", "Events", "Of read"], _reason_rows(counts, read), "No dead letters.", [1, 2])}

<h2>Top dead-letter errors</h2>
{_table_or_none(["Count", "Reason", "HTTP status", "Error"], _error_rows(counts.errors), "No dead letters.", [0, 2])}

<footer>Replay dead letters by running the job on the files with <code>--input</code> (and
<code>--replay_reasons</code> to pick reasons); <code>python -m pipeline.dead_letters summarize</code> lists them.
Emails, IPs and cookies in error messages are redacted.</footer>
</main>
</body>
</html>
"""


def _rate(count: int, read: int) -> str:
    share = percent_of_read(count, read)
    return f"{share} of read" if share else "—"


def _table_or_none(headers: Sequence[str], rows: Sequence[str], empty: str, numeric: Sequence[int]) -> str:
    if not rows:
        return f'<p class="note">{escape(empty)}</p>'
    head = "".join(f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


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
