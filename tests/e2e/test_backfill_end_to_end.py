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
from woopra_standin import Rule, StandIn

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


def start_job(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def kill_after(job: subprocess.Popen[bytes], server: StandIn, requests: int) -> int:
    """``kill -9`` the job and its delivery process once the stand-in has had ``requests``; returns how many it had."""
    deadline = time.monotonic() + 120
    while len(server.requests) < requests and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.02)
    assert job.poll() is None, "the job ended before it could be killed: " + job.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    os.killpg(job.pid, signal.SIGKILL)  # mid-flight
    job.wait(timeout=30)
    time.sleep(0.5)  # answers still on the wire land in the stand-in's log
    return len(server.requests)


def backfill_args(tmp_path: Path, events: Path, server: StandIn, run: str, *more: str) -> list[str]:
    return ["--input", str(events), "--woopra_project", "example.com", "--woopra_endpoint", server.url,
            "--dead_letter", str(tmp_path / f"dead-{run}") + "/", "--ledger", str(tmp_path / "ledger"),
            "--rate_limit", "400", "--max_in_flight", str(MAX_IN_FLIGHT), "--max_attempts", "1",
            "--summary", str(tmp_path / f"{run}.json"), *more]


# What the stand-in answers: identifies are rejected (400), checkouts fail (503; with --max_attempts
# 1 their retries are exhausted at once), the rest is delivered. Of every 10 generated events of a
# visitor: 1 identify, 1 checkout, 8 delivered.
MIXED = [Rule(match={"_path": "/identify/"}, statuses=[400]), Rule(match={"event": "checkout_started"}, statuses=[503])]


def test_a_kill_9_loses_nothing_whatever_each_event_had_come_to(tmp_path, events):
    """The table of docs/backfill.md#resuming-with-the-ledger, row by row, with a real kill -9."""
    server = StandIn(port=0, delay_ms=10, rules=MIXED).start()
    try:
        first = start_job(backfill_args(tmp_path, events, server, "killed"))
        sent_before_kill = kill_after(first, server, EVENTS // 2)
        killed_at = list(server.requests)
        delivered_before = {request_key(r) for r in killed_at if "/identify/" not in r["path"]
                            and r["params"].get("event") != "checkout_started"}
        assert EVENTS // 2 <= sent_before_kill < EVENTS
        recorded = sum(len(path.read_text().split()) for path in (tmp_path / "ledger").glob("*.keys"))

        resumed = run_pipeline(*backfill_args(tmp_path, events, server, "resumed"), timeout=240)
        assert resumed.returncode == 0, resumed.stderr
        summary = summary_of(tmp_path / "resumed.json")
        assert summary["balanced"] and summary["read"] == EVENTS
        # Row 1: delivered and recorded: skipped. Only delivered events are recorded.
        assert summary["skipped_ledger"] == recorded <= len(delivered_before)
        # Rows 3 and 4: every rejected and every retries-exhausted event, before the kill or not,
        # is sent again and is in the resumed run's dead letters: none is lost.
        dead = read_jsonl(tmp_path / "dead-resumed")
        reasons = collections.Counter(record["reason"] for record in dead)
        assert reasons == {"rejected": EVENTS // 10, "retries_exhausted": EVENTS // 10}
        # Rows 1, 2 and 5: every other event is delivered, the in-flight ones at most twice.
        after = server.requests[sent_before_kill:]
        delivered_after = {request_key(r) for r in after if r["path"].endswith("/ce/")
                           and r["params"].get("event") != "checkout_started"}
        assert len(delivered_before | delivered_after) == EVENTS * 8 // 10
        sent_twice = len(delivered_before & delivered_after)
        assert sent_twice <= 2 * MAX_IN_FLIGHT, f"{sent_twice} delivered events sent twice"

        # A rerun of the finished backfill sends only what Woopra did not accept, and dead-letters it again.
        again = run_pipeline(*backfill_args(tmp_path, events, server, "again"), timeout=240)
        assert again.returncode == 3, again.stderr  # left to send: only what the stand-in refuses
        assert summary_of(tmp_path / "again.json")["skipped_ledger"] == EVENTS * 8 // 10
        assert len(read_jsonl(tmp_path / "dead-again")) == EVENTS * 2 // 10
    finally:
        server.stop()


def test_a_backfill_whose_every_answer_is_400_and_is_killed_dead_letters_every_event_on_resume(tmp_path, events):
    server = StandIn(port=0, delay_ms=10, rules=[Rule(statuses=[400])]).start()
    try:
        first = start_job(backfill_args(tmp_path, events, server, "killed"))
        kill_after(first, server, EVENTS // 2)
        assert not list((tmp_path / "ledger").glob("*.keys")) or not any(
            path.read_text() for path in (tmp_path / "ledger").glob("*.keys"))  # nothing was delivered
        resumed = run_pipeline(*backfill_args(tmp_path, events, server, "resumed"), timeout=240)
        assert resumed.returncode == 3, resumed.stderr  # every answer a 400: nothing delivered
        summary = summary_of(tmp_path / "resumed.json")
        assert summary["skipped_ledger"] == 0 and summary["rejected"] == EVENTS and summary["balanced"]
        assert len(read_jsonl(tmp_path / "dead-resumed")) == EVENTS
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
