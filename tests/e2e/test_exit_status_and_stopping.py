"""End to end, ``python -m pipeline`` as a user runs it: an exit status that means something, the
causes of failed deliveries, Ctrl-C and SIGTERM mid-run, and what the summary says about its files
(docs/operations.md, "Exit status" and "Stopping a run")."""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path

import pytest

from tests.conftest import SAMPLES
from tests.e2e.test_end_to_end import run_pipeline
from tests.support.generated_events import generated_events
from tests.support.running_job import RunningJob

SAMPLE_DELIVERABLE = 16  # sample events that are sent
EVENTS = 600  # generated events, one request each: at 40 requests/s sending takes 15 s
STOPPED_WITHIN = 10.0  # seconds from the signal to the end of the process
INTERRUPTED = 130
NOTHING_DELIVERED = 3


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: every connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    """Generated events of consenting visitors (tests/support/generated_events.py)."""
    return generated_events(tmp_path_factory.mktemp("stopping"), EVENTS)


def sample_args(tmp_path: Path, endpoint: str) -> list[str]:
    return ["--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
            "--woopra_endpoint", endpoint, "--dead_letter", str(tmp_path / "dead") + "/",
            "--summary", str(tmp_path / "summary.json")]


def stop_quietly(job, signal_number: int) -> None:
    """Send ``signal_number``; the run ends with the interrupted status soon after, without a traceback."""
    job.process.send_signal(signal_number)
    code, waited = job.finish(timeout=30)
    assert code == INTERRUPTED, job.err
    assert waited < STOPPED_WITHIN, job.err
    assert "Traceback" not in job.err


def test_help_lists_the_exit_statuses():
    done = run_pipeline("--help", timeout=60)
    assert done.returncode == 0, done.stderr
    statuses = done.stdout.split("exit status:", 1)[1]
    for status in ("0", "1", "2", "3", "130"):
        assert re.search(rf"^  {status} +\S", statuses, re.MULTILINE), statuses


def test_nothing_delivered_exits_3_and_names_the_cause(tmp_path, closed_port):
    done = run_pipeline(*sample_args(tmp_path, f"http://127.0.0.1:{closed_port}/track"), "--max_attempts", "2")
    assert done.returncode == NOTHING_DELIVERED, done.stderr
    assert (f"    retries_exhausted {SAMPLE_DELIVERABLE}: connection refused by 127.0.0.1:{closed_port}"
            in done.stdout), done.stdout
    assert "error: nothing was delivered (exit status 3)" in done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failure_causes"] == [{"outcome": "retries_exhausted", "count": SAMPLE_DELIVERABLE,
                                          "cause": f"connection refused by 127.0.0.1:{closed_port}"}]


def test_a_delivered_run_exits_0(tmp_path, standin):
    done = run_pipeline(*sample_args(tmp_path, standin.url))
    assert done.returncode == 0, done.stderr
    assert "failed deliveries" not in done.stdout


def test_failing_attempts_are_said_in_the_first_seconds_and_sigterm_stops_the_run(tmp_path, closed_port):
    # Every attempt is refused and retried for up to 60 s: the warning must come long before that.
    job = RunningJob(*sample_args(tmp_path, f"http://127.0.0.1:{closed_port}/track"), "--max_attempts", "100",
                     "--max_retry_seconds", "60")
    try:
        at, line = job.wait_for_stderr(r"nothing delivered in the first 10 s of sending", timeout=45)
        assert f"connection refused by 127.0.0.1:{closed_port}" in line
        assert job.process.poll() is None, "the warning came at the end, not while the run went on"
        stop_quietly(job, signal.SIGTERM)
    finally:
        job.kill()
    assert f"interrupted: {SAMPLE_DELIVERABLE} events not processed" in job.out
    assert "no --ledger was given, so a rerun would send the 0 events delivered again" in job.out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] and summary["not_processed"] == SAMPLE_DELIVERABLE


def test_ctrl_c_mid_run_writes_what_was_answered_and_the_rerun_resumes(tmp_path, standin, events):
    ledger = tmp_path / "ledger"
    args = ["--input", str(events), "--woopra_project", "example.com", "--woopra_endpoint", standin.url,
            "--dead_letter", str(tmp_path / "dead") + "/", "--summary", str(tmp_path / "summary.json"),
            "--ledger", str(ledger) + "/", "--rate_limit", "40"]
    job = RunningJob(*args)
    try:
        # The first progress line comes within 10 s even with the default 60 s interval.
        at, _ = job.wait_for_stderr(r"progress: read=", timeout=60)
        assert at < 15, job.err  # 10 s plus the interpreter's and Beam's start
        assert standin.wait_for(40, timeout=60), "nothing was sent"
        stop_quietly(job, signal.SIGINT)
    finally:
        job.kill()
    summary = json.loads((tmp_path / "summary.json").read_text())
    delivered = summary["delivered_200"]
    assert summary["interrupted"] and 0 < delivered < EVENTS
    assert summary["not_processed"] == summary["read"] - summary["accounted"]
    # Reading stops too: what was not read yet is left for the resumed run.
    assert summary["input_read_to_the_end"] is (summary["read"] == EVENTS)
    unread = "" if summary["read"] == EVENTS else "; the rest of the input was not read"
    assert f"interrupted: {summary['not_processed']:,} events not processed{unread}\n" in job.out
    assert "to resume" in job.out and "--ledger" in job.out
    assert not list(tmp_path.rglob("beam-temp-*"))
    keys = [line for path in ledger.glob("*.keys") for line in path.read_text().splitlines() if line]
    # Every event delivered is in the ledger, and so is one whose answer came in the last moment
    # (after the grace time, counted not processed): a resumed run must not send it again.
    assert delivered <= len(keys) < EVENTS
    assert any(str(path.relative_to(tmp_path)) in job.out for path in ledger.glob("*.keys"))

    # The command it prints resumes: what was delivered is skipped, the rest is sent.
    resumed = run_pipeline(*args, "--rate_limit", "2000")
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads((tmp_path / "summary.json").read_text())
    assert again["skipped_ledger"] == len(keys)
    assert again["delivered_200"] == EVENTS - len(keys)


def test_an_empty_input_says_it_read_nothing(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    done = run_pipeline("--input", str(empty), "--woopra_project", "example.com",
                        "--dry_run_output", str(tmp_path / "requests") + "/",
                       "--dead_letter", str(tmp_path / "dead") + "/")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^read 0 events from 1 file \(.*empty\.jsonl\)$", done.stdout, re.MULTILINE), done.stdout


def test_the_summary_lists_every_file_the_run_wrote(tmp_path, standin):
    done = run_pipeline(*sample_args(tmp_path, standin.url), "--ledger", str(tmp_path / "ledger") + "/",
                        "--report", str(tmp_path / "report.html"))
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("files written:\n", 1)[1].split("\n")
    listed = [line.strip() for line in listed if line.startswith("    ")]
    written = sorted(str(path) for path in tmp_path.rglob("*") if path.is_file())
    assert sorted(listed) == written
    assert json.loads((tmp_path / "summary.json").read_text())["files"] == listed

    dry = run_pipeline("--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
                       "--dry_run_output", str(tmp_path / "requests") + "/",
                       "--dead_letter", str(tmp_path / "dead") + "/")
    assert dry.returncode == 0, dry.stderr
    requests_files = list((tmp_path / "requests").glob("*.jsonl"))
    assert requests_files and all(str(path) in dry.stdout for path in requests_files)


