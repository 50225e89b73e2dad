"""Unit tests for the run report: transforms/count_per_minute.py (the graph branch) and pipeline/tools/report.py."""

from __future__ import annotations

import json
from collections import Counter

import apache_beam as beam
from apache_beam.transforms.window import TimestampedValue

from pipeline.summary import build_summary
from pipeline.tools.report import (
    MAX_BARS,
    ErrorCount,
    ReportCounts,
    RunDescription,
    chart_bars,
    parse_counts,
    render_report,
)
from tests.conftest import batch_pipeline
from transforms.count_per_minute import CountPerMinute, count_record, dead_letter_time_ms, minute_of
from transforms.rules.dead_letters import DeadLetter

T0 = 1_772_443_307_005  # 2026-03-02T09:21:47.005Z
RUN = RunDescription("events/*.jsonl", "mywebsite.com", "https://www.woopra.com/track", "dead_letter/", None,
                     "2026-11-26 10:00 UTC")


def test_minute_of_event_time():
    assert minute_of(T0) == "2026-03-02T09:21Z"
    assert minute_of(T0 + 13_000) == "2026-03-02T09:22Z"
    assert minute_of(None) == "" and minute_of(-9_223_372_036_854_775) == ""


def test_dead_letter_time_falls_back_to_the_events_own_timestamp():
    letter = DeadLetter("invalid_event", "missing field 'type'", {"timestamp": "2026-03-07T09:00:00Z"})
    assert dead_letter_time_ms(letter, T0) == T0
    assert minute_of(dead_letter_time_ms(letter, None)) == "2026-03-07T09:00Z"
    assert dead_letter_time_ms(DeadLetter("invalid_json", "x", None, raw="{"), None) is None


def test_count_per_minute_writes_minute_and_error_counts(tmp_path):
    sent = [TimestampedValue("request", (T0 + i * 1000) / 1000) for i in range(3)]  # 09:21:47..49
    dead = [
        TimestampedValue(DeadLetter("rejected", "HTTP 400", {}, status=400), (T0 + 20_000) / 1000),  # 09:22
        TimestampedValue(DeadLetter("retries_exhausted", "ConnectionError: url: /ce/?cv_email=j%40x.com", {}), 0),
    ]
    with batch_pipeline() as p:
        # Each element leaves Create with its timestamp (a TimestampedValue): the type is the value's.
        _ = (p | "Sent" >> beam.Create(sent).with_output_types(str),
             p | "Dead" >> beam.Create(dead).with_output_types(DeadLetter)) | CountPerMinute(
            str(tmp_path / "report.html"))
    records = [json.loads(line) for path in tmp_path.glob("report.html.counts/*.jsonl")
               for line in path.read_text().splitlines()]
    assert sorted(records, key=json.dumps) == sorted([
        {"kind": "minute", "minute": "2026-03-02T09:21Z", "outcome": "sent", "reason": None, "count": 3},
        {"kind": "minute", "minute": "2026-03-02T09:22Z", "outcome": "dead_letter", "reason": "rejected", "count": 1},
        {"kind": "minute", "minute": "1970-01-01T00:00Z", "outcome": "dead_letter", "reason": "retries_exhausted",
         "count": 1},
        {"kind": "error", "reason": "rejected", "status": 400, "error": "HTTP 400", "count": 1},
        {"kind": "error", "reason": "retries_exhausted", "status": None,
         "error": "ConnectionError: url: /ce/?…", "count": 1},  # the query, with its email, is dropped
    ], key=json.dumps)


def test_count_record_shapes():
    assert count_record((("minute", "", "dead_letter", "invalid_json"), 2)) == {
        "kind": "minute", "minute": None, "outcome": "dead_letter", "reason": "invalid_json", "count": 2}


def test_parse_counts_splits_sent_dead_and_untimed():
    lines = [json.dumps(r) for r in (
        {"kind": "minute", "minute": "2026-03-02T09:21Z", "outcome": "sent", "reason": None, "count": 3},
        {"kind": "minute", "minute": "2026-03-02T09:21Z", "outcome": "dead_letter", "reason": "rejected", "count": 1},
        {"kind": "minute", "minute": None, "outcome": "dead_letter", "reason": "invalid_json", "count": 2},
        {"kind": "error", "reason": "invalid_json", "status": None, "error": "invalid JSON", "count": 2},
        {"kind": "error", "reason": "rejected", "status": 400, "error": "HTTP 400", "count": 1},
    )]
    counts = parse_counts(lines + [""])
    assert counts.sent_per_minute == {"2026-03-02T09:21Z": 3}
    assert counts.dead_per_minute == {"2026-03-02T09:21Z": 1}
    assert (counts.dead_without_time, counts.sent_without_time) == (2, 0)
    assert counts.reasons == {"invalid_json": 2, "rejected": 1}
    assert [e.error for e in counts.errors] == ["invalid JSON", "HTTP 400"]  # most frequent first


def _minutes(start: str, count: int, step: int = 1) -> dict[str, int]:
    from datetime import datetime, timedelta

    first = datetime.strptime(start, "%Y-%m-%dT%H:%MZ")
    return {(first + timedelta(minutes=i * step)).strftime("%Y-%m-%dT%H:%MZ"): 1 for i in range(count)}


def test_chart_is_per_minute_and_continuous_when_the_span_fits():
    sent = _minutes("2026-03-02T09:00Z", 30, step=3)  # 88 minutes, every third one busy
    chart = chart_bars(sent, {"2026-03-02T09:01Z": 2})
    assert (chart.bucket_minutes, chart.continuous, len(chart.bars)) == (1, True, 88)
    assert (chart.bars[1].sent, chart.bars[1].dead) == (0, 2)


def test_chart_draws_only_busy_minutes_when_they_are_few_but_far_apart():
    chart = chart_bars({"2026-03-02T09:15Z": 1, "2026-03-06T10:02Z": 4}, {})
    assert (chart.bucket_minutes, chart.continuous, [b.sent for b in chart.bars]) == (1, False, [1, 4])


def test_chart_coarsens_when_there_are_too_many_busy_minutes():
    sent = _minutes("2026-03-02T00:00Z", 3 * 24 * 60 // 7, step=7)  # three days, a burst every 7 minutes
    chart = chart_bars(sent, {})
    assert chart.bucket_minutes == 60 and chart.continuous and len(chart.bars) <= MAX_BARS
    assert sum(b.sent for b in chart.bars) == len(sent)
    assert chart_bars({}, {}).bars == []


def test_render_report_dry_run_and_escaping():
    summary = build_summary({"read": 4, "would_send": 2, "invalid": 2}, dry_run=True, elapsed_seconds=1.0)
    counts = ReportCounts(Counter({"2026-03-02T09:21Z": 2}), Counter(), 0, 2, Counter({"invalid_event": 2}),
                          [ErrorCount("invalid_event", None, "unknown type '<script>' for a@example.com", 2)])
    run = RunDescription("in<put>.jsonl", "mywebsite.com", "https://www.woopra.com/track", "dead/", "out/requests/",
                         "now")
    page = render_report(summary, counts, run)
    assert "Woopra delivery report (dry run)" in page and "out/requests/" in page
    assert '<div class="label">Would send</div><div class="value">2</div>' in page
    assert "&lt;script&gt;" in page and "<script" not in page and "in&lt;put&gt;.jsonl" in page
    assert "a***@example.com" in page and "a@example.com" not in page
    assert "<title>09:21 UTC: 2 would send, 0 dead-lettered</title>" in page


def test_render_report_flags_a_mismatch_and_handles_no_events():
    summary = build_summary({"read": 3, "delivered_200": 2}, dry_run=False, elapsed_seconds=1.0)
    page = render_report(summary, ReportCounts(), RUN)
    assert "(MISMATCH)" in page and "No event in this run had an event time to chart." in page
    assert "No dead letters." in page



def test_render_report_escapes_every_hostile_value():
    hostile = "&\"'<>"
    script = "<script>alert(1)</script>"
    summary = build_summary({"read": 2, "rejected": 1, "invalid": 1}, dry_run=False, elapsed_seconds=1.0)
    counts = ReportCounts(Counter(), Counter({"2026-03-02T09:21Z": 2}), 0, 0, Counter({hostile: 1, script: 1}),
                          [ErrorCount(hostile, 400, script, 1), ErrorCount("rejected", None, f"bad {hostile}", 1)])
    run = RunDescription(f"in{script}.jsonl", f"site{hostile}", f"http://x/{script}", f"dead{hostile}/",
                         f"dry{script}/", f"now{hostile}")
    page = render_report(summary, counts, run)
    assert "<script" not in page and hostile not in page
    escaped_script, escaped_hostile = "&lt;script&gt;alert(1)&lt;/script&gt;", "&amp;&#34;&#39;&lt;&gt;"
    assert f"<code>{escaped_script}</code>" in page  # the error text
    assert f"<code>{escaped_hostile}</code>" in page  # the reason, in both tables
    assert f"<code>bad {escaped_hostile}</code>" in page
    assert f"<strong>site{escaped_hostile}</strong>" in page and f"<code>in{escaped_script}.jsonl</code>" in page
    assert f"<code>dry{escaped_script}/</code>" in page and f"<code>dead{escaped_hostile}/</code>" in page
    assert f"Generated now{escaped_hostile} ·" in page
    # The markup itself is intact: one page, the chart's bar and both tables of dead letters.
    assert page.count("<html") == 1 and page.count("<svg ") == 1 and page.count("<table>") == 3
