"""End to end, as a user runs a backfill (docs/backfill.md): ``python -m pipeline`` against the local
stand-in, killed with ``kill -9`` and resumed from its ledger, sliced with --start/--end, and fed
copies of its events."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, subprocess_env
from tests.e2e.test_end_to_end import read_jsonl, run_pipeline
from tests.support.generated_events import generated_events
from woopra_standin import StandIn

EVENTS = 1500
MAX_IN_FLIGHT = 8


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    """Generated events of consenting visitors (tests/support/generated_events.py)."""
    return generated_events(tmp_path_factory.mktemp("backfill"), EVENTS)


def request_key(request: dict) -> str:
    """One delivered event: the generated events differ in cookie, time and name."""
    params = request["params"]
    return json.dumps([request["path"], params.get("cookie"), params.get("timestamp"), params.get("event")])


def summary_of(path: Path) -> dict:
    return json.loads(path.read_text())


def test_a_backfill_killed_with_kill_9_resumes_from_its_ledger_and_sends_only_what_was_in_flight(tmp_path, events):
    server = StandIn(port=0, delay_ms=20).start()
    try:
        args = ["--input", str(events), "--woopra_project", "example.com", "--woopra_endpoint", server.url,
                "--dead_letter", str(tmp_path / "dead") + "/", "--ledger", str(tmp_path / "ledger"),
                "--rate_limit", "250", "--max_in_flight", str(MAX_IN_FLIGHT), "--summary", str(tmp_path / "s.json")]
        job = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=subprocess_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 120
        while len(server.requests) < EVENTS // 3 and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.05)
        assert job.poll() is None, "the job ended before it could be killed: " + job.stderr.read().decode()[-2000:]
        os.killpg(job.pid, signal.SIGKILL)  # the job and its delivery process, mid-flight
        job.wait(timeout=30)
        time.sleep(0.5)  # answers still on the wire land in the stand-in's log
        sent_before_kill = len(server.requests)
        assert EVENTS // 3 <= sent_before_kill < EVENTS

        resumed = run_pipeline(*args, timeout=240)
        assert resumed.returncode == 0, resumed.stderr
        summary = summary_of(tmp_path / "s.json")
        assert summary["balanced"] and summary["read"] == EVENTS
        assert summary["skipped_ledger"] + summary["delivered_200"] == EVENTS
        assert summary["skipped_ledger"] >= sent_before_kill - 2 * MAX_IN_FLIGHT

        counts = collections.Counter(request_key(request) for request in server.requests)
        assert len(counts) == EVENTS  # every event delivered
        sent_twice = sum(n - 1 for n in counts.values())
        assert sent_twice <= 2 * MAX_IN_FLIGHT, f"{sent_twice} events sent twice"

        total = len(server.requests)
        again = run_pipeline(*args, timeout=240)
        assert again.returncode == 0, again.stderr
        assert summary_of(tmp_path / "s.json")["skipped_ledger"] == EVENTS
        assert len(server.requests) == total  # a finished backfill sends nothing more
    finally:
        server.stop()


def call(**fields) -> str:
    base = {"anonymousId": "a-1", "context": {"consent": {"analytics": True}}}
    return json.dumps({**base, **fields}) + "\n"


def test_a_slice_sends_only_its_events_and_they_still_carry_identity_from_before_it(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        call(type="identify", messageId="1", timestamp="2026-02-20T10:00:00Z", traits={"email": "j@example.com"})
        + call(type="track", event="Signed Up", messageId="2", timestamp="2026-03-01T00:00:00Z")  # first instant
        + call(type="track", event="Upgraded", messageId="3", timestamp="2026-03-20T10:00:00Z")
        + call(type="track", event="Churned", messageId="4", timestamp="2026-04-01T00:00:00Z"))  # end is exclusive
    done = run_pipeline("--input", str(path), "--woopra_project", "example.com", "--start", "2026-03-01",
                        "--end", "2026-04-01", "--dry_run_output", str(tmp_path / "requests") + "/",
                        "--dead_letter", str(tmp_path / "dead") + "/", "--summary", str(tmp_path / "s.json"))
    assert done.returncode == 0, done.stderr
    summary = summary_of(tmp_path / "s.json")
    assert (summary["would_send"], summary["out_of_range"], summary["balanced"]) == (2, 2, True)
    requests = read_jsonl(tmp_path / "requests")
    assert sorted(r["params"]["event"] for r in requests) == ["Upgraded", "signup"]  # Signed Up: a preset
    assert {r["params"]["cv_email"] for r in requests} == {"j@example.com"}  # the identify before the slice


def test_an_input_given_twice_sends_each_event_once(tmp_path):
    doubled = tmp_path / "doubled.jsonl"
    sample = (SAMPLES / "events.jsonl").read_text()
    doubled.write_text(sample + sample)
    done = run_pipeline("--input", str(doubled), "--config", str(SAMPLES / "mapping.yaml"),
                        "--dry_run_output", str(tmp_path / "requests") + "/",
                        "--dead_letter", str(tmp_path / "dead") + "/", "--summary", str(tmp_path / "s.json"))
    assert done.returncode == 0, done.stderr
    summary = summary_of(tmp_path / "s.json")
    # The sample: 27 inputs, 16 sent; its 5 invalid inputs are dead-lettered each time they are read,
    # and its filtered calls are filtered twice: only calls identity sees are deduplicated.
    assert (summary["read"], summary["would_send"], summary["duplicate"], summary["balanced"]) == (54, 16, 16, True)
    assert "duplicate                  16" in done.stdout
