"""End to end: a batch run logs progress with the share of its input read and an ETA, and a dry
run ends with the plan (docs/operations.md, "Progress and the plan")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_end_to_end import run_pipeline
from tests.support.generated_events import generated_events

EVENTS = 3000
PROGRESS_WITH_SHARE = re.compile(
    r"INFO pipeline\.progress: progress: read=\d+ delivered=\d+ dead_lettered=\d+ filtered=\d+ retried=\d+ "
    r"\| [\d.]+ read/s, [\d.]+ delivered/s \| input (\d+\.\d)% of [\d.]+ MiB, ETA (about|under) \d+ (s|min)$",
    re.MULTILINE)


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    """Generated events of consenting visitors (tests/support/generated_events.py)."""
    return generated_events(tmp_path_factory.mktemp("progress"), EVENTS)


def test_a_batch_run_logs_the_share_of_input_read_and_an_eta(tmp_path, standin, events):
    # 400 requests/s: sending takes several progress intervals.
    done = run_pipeline("--input", str(events), "--woopra_project", "example.com", "--woopra_endpoint", standin.url,
                        "--dead_letter", str(tmp_path / "dead") + "/", "--rate_limit", "400",
                        "--progress_interval_seconds", "1")
    assert done.returncode == 0, done.stderr
    assert f"accounting: read {EVENTS:,} = outcomes {EVENTS:,} (ok)" in done.stdout
    lines = PROGRESS_WITH_SHARE.findall(done.stderr)
    assert lines, done.stderr
    shares = [float(share) for share, _, _ in lines]
    assert shares == sorted(shares) and 0 < shares[-1] <= 100
    assert "plan:" not in done.stdout  # the plan is a dry run's


def test_a_dry_run_ends_with_how_long_sending_would_take(tmp_path, events):
    done = run_pipeline("--input", str(events), "--woopra_project", "example.com",
                        "--dry_run_output", str(tmp_path / "requests") + "/",
                        "--dead_letter", str(tmp_path / "dead") + "/", "--rate_limit", "400", "--max_in_flight", "16")
    assert done.returncode == 0, done.stderr
    summary, plan = done.stdout.rstrip("\n").rsplit("\n", 1)
    assert re.search(rf"^  would_send +{EVENTS:,} +100\.0%$", summary, re.MULTILINE)
    assert plan == (f"plan: {EVENTS:,} requests at 400/s: about 8 s "
                    "(without retries; 16 in flight keep that rate while Woopra answers within 40 ms)")
