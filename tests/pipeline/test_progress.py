"""The progress line (pipeline/progress.py): counts, backfill outcomes, the share of input read and the ETA."""

from __future__ import annotations

import logging
import re
import threading
from collections import deque

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.progress import (
    Sample,
    batch_progress_line,
    counts_in_this_process,
    eta_seconds,
    input_part,
    progress_line,
    since,
    size,
    watch_batch,
)
from transforms.read_events import BYTES_READ

MIB = 1024 * 1024


def test_the_streaming_line_is_unchanged_without_backfill_outcomes():
    counts = {"read": 27, "delivered_200": 16, "invalid": 5, "unsupported": 3, "consent_denied": 2,
              "consent_missing": 1, "retried_requests": 0}
    assert progress_line(counts, {}, 5.0) == (
        "progress: read=27 delivered=16 dead_lettered=5 filtered=6 retried=0 | 5.4 read/s, 3.2 delivered/s")


def test_backfill_outcomes_show_beside_filtered_when_not_zero():
    counts = {"read": 100, "delivered_200": 60, "duplicate": 7, "skipped_ledger": 0, "out_of_range": 33}
    line = progress_line(counts, {}, 10.0)
    assert "filtered=40 duplicate=7 out_of_range=33 retried=0" in line
    assert "skipped_ledger" not in line


def test_a_dry_run_counts_would_send_as_delivered():
    assert "delivered=9 " in progress_line({"read": 9, "would_send": 9}, {}, 1.0)


def test_sizes():
    assert (size(812), size(3.5 * 1024), size(12 * MIB), size(1536 * MIB)) == (
        "812 B", "3.5 KiB", "12.0 MiB", "1.5 GiB")


def test_eta_when_events_settle_as_they_are_read():
    # 10 MiB of input; a quarter read in 10 s, 1,000 events read and finished: 3,000 more to go at 100/s.
    oldest, newest = Sample(0.0, 0, 0, 0), Sample(10.0, 1000, 1000, 10 * MIB // 4)
    assert eta_seconds(oldest, newest, 10 * MIB) == 30.0


def test_eta_when_the_input_is_read_ahead_of_sending():
    # Everything read (a reshuffle before delivery), 400 of 1,000 finished, 50 finished per second.
    oldest, newest = Sample(0.0, 1000, 100, 10 * MIB), Sample(6.0, 1000, 400, 10 * MIB)
    assert eta_seconds(oldest, newest, 10 * MIB) == 12.0


def test_eta_is_unknown_before_anything_is_read_or_settles_and_zero_at_the_end():
    total = 10 * MIB
    assert eta_seconds(Sample(0, 0, 0, 0), Sample(5, 0, 0, 0), total) is None  # still reading for identity
    assert eta_seconds(Sample(0, 10, 0, 1000), Sample(5, 10, 0, 1000), total) is None  # nothing finished yet
    assert eta_seconds(Sample(0, 0, 0, 0), Sample(5, 10, 10, 1000), 0) is None  # size unknown
    assert eta_seconds(Sample(0, 5, 5, total), Sample(5, 10, 10, total), total) == 0.0


def test_the_batch_line_adds_share_and_eta_and_measures_the_rate_from_the_first_finished_events():
    total = 8 * MIB
    # Three intervals of the identity read (nothing finished), then 2,000 events in one interval.
    history = deque([Sample(0, 0, 0, 0), Sample(1, 0, 0, 0), Sample(2, 0, 0, 0), Sample(3, 2000, 2000, MIB)])
    counts = {"read": 2000, "delivered_200": 2000, BYTES_READ: MIB}
    line = batch_progress_line(history, counts, {}, total)
    assert line.startswith("progress: read=2000 delivered=2000 ")
    # 14,000 events to go at 2,000/s (not 2,000 over three seconds): 7 s.
    assert line.endswith("| 2000.0 read/s, 2000.0 delivered/s | input 12.5% of 8.0 MiB, ETA about 7 s")
    assert input_part(0, total, None) == "input 0.0% of 8.0 MiB, ETA unknown"
    assert batch_progress_line(history, counts, {}, None).endswith("delivered/s")  # size unknown: no share


def test_counts_since_a_baseline():
    assert since({"read": 5}, {"read": 12, "invalid": 1}) == {"read": 7, "invalid": 1}


def test_progress_is_shown_only_where_the_counts_are_in_this_process():
    def options(*flags: str) -> PipelineOptions:
        return PipelineOptions(list(flags))

    assert counts_in_this_process(options("--runner", "FnApiRunner"))
    assert counts_in_this_process(options("--runner", "BundleBasedDirectRunner"))
    assert counts_in_this_process(options("--runner", "FnApiRunner", "--direct_running_mode", "multi_threading"))
    assert not counts_in_this_process(options("--runner", "FnApiRunner", "--direct_running_mode", "multi_processing",
                                              "--direct_num_workers", "2"))
    assert not counts_in_this_process(options("--runner", "PortableRunner"))
    assert not counts_in_this_process(options("--runner", "DirectRunner"))  # it may hand the job to Prism


def test_watch_batch_logs_share_and_eta_until_stopped(tmp_path, caplog):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"x" * 1000)  # the input's size is measured, not counted
    tallies = [{"read": 5, BYTES_READ: 100},  # a baseline: this process counted before the job
               {"read": 15, "delivered_200": 10, BYTES_READ: 350},
               {"read": 25, "delivered_200": 20, BYTES_READ: 600}]
    stop = threading.Event()

    def counts() -> dict[str, int]:
        if len(tallies) == 1:
            stop.set()
        return tallies.pop(0) if len(tallies) > 1 else tallies[0]

    with caplog.at_level(logging.INFO, logger="pipeline.progress"):
        watch_batch(0.01, stop, str(events), counts)
    lines = [message for message in caplog.messages if message.startswith("progress: ")]
    assert lines[0].startswith("progress: read=10 delivered=10 ")
    assert "| input 25.0% of 1000 B, ETA " in lines[0]
    assert lines[1].startswith("progress: read=20 delivered=20 ")
    assert re.search(r"\| input 50\.0% of 1000 B, ETA (about|under) \d+ s$", lines[1])


def test_the_early_warning_waits_10_s_after_the_first_request_and_names_the_cause():
    from pipeline.progress import early_warning
    from transforms.deliver import SendingSoFar

    endpoint = "http://127.0.0.1:9/track"
    assert early_warning(SendingSoFar(), 100.0, endpoint) is None  # nothing sent yet
    failing = SendingSoFar(first_sent_at=95.0, failed_attempts=48,
                           last_error="ConnectionRefusedError: [Errno 111] Connection refused")
    assert early_warning(failing, 100.0, endpoint) is None  # too early to tell
    assert early_warning(failing, 105.0, endpoint) == (
        "nothing delivered in the first 10 s of sending: every attempt failed (48 so far), the last with "
        "connection refused by 127.0.0.1:9; each request is retried up to --max_attempts, then dead-lettered")
    assert early_warning(SendingSoFar(first_sent_at=95.0), 105.0, endpoint) == (
        f"nothing delivered in the first 10 s of sending: no answer yet from {endpoint}")
    assert early_warning(SendingSoFar(first_sent_at=95.0, delivered=1), 105.0, endpoint) == ""
