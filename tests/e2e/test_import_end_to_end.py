"""End to end, ``python -m pipeline --sink import`` against the stand-in's Import API
(docs/backfill.md#the-import-sink): a dry run and its plan, a missing credential, a poisoned visit
isolated with 429s on the way, a rerun and a ``kill -9`` resumed from the ledger, and a scan of every
output for the secret."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT, subprocess_env
from tests.e2e.test_backfill_end_to_end import kill_after
from tests.e2e.test_end_to_end import read_jsonl
from tests.support.generated_events import generated_events
from woopra_standin import Rule, StandIn
from woopra_standin.import_api import parse_import_body

EVENTS = 1500  # 150 visitors of 10 calls each, one visit each (tests/support/generated_events.py)
VISITS = EVENTS // 10
MAX_VISITS = 5
IN_FLIGHT = 2
SECRET = "s3cr3t-CANARY-7f1e"  # what no output may ever show
POISON = '"visitor7@example.com"'  # in the line of one visit only


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    return generated_events(tmp_path_factory.mktemp("import"), EVENTS)


def run_import(*args: str, secret: str = SECRET, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = subprocess_env() | {"WOOPRA_APP_ID": "app-1", "WOOPRA_SECRET_KEY": secret}
    return subprocess.run([sys.executable, "-m", "pipeline", "--sink", "import", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def import_args(tmp_path: Path, events: Path, server: StandIn, run: str, *more: str) -> list[str]:
    return ["--input", str(events), "--woopra_project", "example.com", "--woopra_import_endpoint", server.import_url,
            "--dead_letter", str(tmp_path / f"dead-{run}") + "/", "--ledger", str(tmp_path / "ledger"),
            "--import_max_visits", str(MAX_VISITS), "--import_max_in_flight", str(IN_FLIGHT),
            "--summary", str(tmp_path / f"{run}.json"), *more]


def visit_identity(visit: dict) -> str:
    return json.dumps([visit["visitor"].get("cookie"), visit["actions"][0]["time"]])


def test_a_dry_run_writes_the_bodies_and_plans_the_calls(tmp_path, events):
    done = run_import("--input", str(events), "--woopra_project", "example.com",
                      "--dry_run", str(tmp_path / "dry") + "/", "--dead_letter", str(tmp_path / "dead") + "/",
                      "--summary", str(tmp_path / "s.json"), "--import_max_visits", "40")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["would_import"], summary["import_calls"], summary["balanced"]) == (EVENTS, 4, True)
    bodies = sorted((tmp_path / "dry").glob("import-*.ndjson"))
    assert len(bodies) == 4
    visits = []
    for body in bodies:
        parsed, problem = parse_import_body(body.read_text())
        assert problem is None and len(parsed) <= 40
        visits += parsed
    assert len(visits) == VISITS and sum(len(v["actions"]) for v in visits) == EVENTS - VISITS  # identifies: no action
    assert "plan: 4 import calls: under 1 s at 300/min" in done.stdout


def test_a_missing_credential_is_one_line_before_anything_is_read(tmp_path, events):
    done = run_import(*import_args(tmp_path, events, StandIn(port=0), "none"), secret="")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: --sink import needs Woopra's Access Keys: set "
                                                "WOOPRA_SECRET_KEY, or give --woopra_credentials FILE (JSON with "
                                                "app_id and secret_key)"]
    assert not (tmp_path / "dead-none").exists() and not (tmp_path / "none.json").exists()
    bad = tmp_path / "keys.json"
    bad.write_text(json.dumps({"app_id": "app-1"}))
    done = run_import(*import_args(tmp_path, events, StandIn(port=0), "none"), "--woopra_credentials", str(bad))
    assert done.returncode == 2 and done.stderr.strip() == f"error: --woopra_credentials: {bad} has no secret_key"


def test_a_poisoned_visit_is_isolated_429s_are_waited_out_and_a_rerun_imports_nothing_again(tmp_path, events):
    server = StandIn(port=0, import_keys=("app-1", SECRET), rules=[
        Rule(match={"_body": POISON}, statuses=[400], body='{"success":false,"error":"bad visit"}'),
        Rule(match={"_body": '"visitor20@example.com"'}, statuses=[429, 200], retry_after="1")]).start()
    try:
        report = tmp_path / "report.html"
        done = run_import(*import_args(tmp_path, events, server, "first", "--report", str(report),
                                       "--log_level", "DEBUG"))
        assert done.returncode == 0, done.stderr
        summary = json.loads((tmp_path / "first.json").read_text())
        assert (summary["imported"], summary["rejected"], summary["balanced"]) == (EVENTS - 10, 10, True)
        assert summary["retried_requests"] >= 1  # the 429, waited out
        dead = read_jsonl(tmp_path / "dead-first")
        assert len(dead) == 10 and {d["reason"] for d in dead} == {"rejected"}
        assert {d["event"]["anonymousId"] for d in dead} == {dead[0]["event"]["anonymousId"]}
        assert dead[0]["status"] == 400 and "bad visit" in dead[0]["response_body"]
        assert len(server.imported_visits) == VISITS - 1
        assert report.exists()
        scan_for_secret(tmp_path, done, server)

        again = run_import(*import_args(tmp_path, events, server, "again"))
        assert again.returncode == 3, again.stderr  # the rerun's only sends were the poisoned visit: nothing imported
        rerun = json.loads((tmp_path / "again.json").read_text())
        assert (rerun["skipped_ledger"], rerun["rejected"], rerun["imported"]) == (EVENTS - 10, 10, 0)
        assert len(server.imported_visits) == VISITS - 1  # nothing imported twice
    finally:
        server.stop()


def scan_for_secret(tmp_path: Path, done: subprocess.CompletedProcess[str], server: StandIn) -> None:
    """Every file the run wrote (dead letters, summary, report, ledger), its output and logs: no secret."""
    assert SECRET not in done.stdout and SECRET not in done.stderr
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.suffix == ".keys" for path in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in json.dumps(server.requests)


def test_a_kill_9_and_resume_imports_every_visit_and_only_bodies_in_flight_twice(tmp_path, events):
    server = StandIn(port=0, delay_ms=250, import_keys=("app-1", SECRET)).start()
    try:
        env = subprocess_env() | {"WOOPRA_APP_ID": "app-1", "WOOPRA_SECRET_KEY": SECRET}
        job = subprocess.Popen([sys.executable, "-m", "pipeline", "--sink", "import",
                                *import_args(tmp_path, events, server, "killed")], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        calls_at_kill = kill_after(job, server, VISITS // MAX_VISITS // 3)
        assert calls_at_kill < VISITS // MAX_VISITS
        before = [visit_identity(v) for v in server.imported_visits]
        resumed = run_import(*import_args(tmp_path, events, server, "resumed"))
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads((tmp_path / "resumed.json").read_text())
        assert summary["balanced"] and summary["skipped_ledger"] + summary["imported"] == EVENTS
        after = [visit_identity(v) for v in server.imported_visits]
        assert len(set(after)) == VISITS  # every visit imported
        twice = [key for key, count in collections.Counter(after).items() if count > 1]
        assert len(twice) <= IN_FLIGHT * MAX_VISITS, f"{len(twice)} visits imported twice"
        assert set(before) <= set(after) and len(set(before)) >= MAX_VISITS
    finally:
        server.stop()


def test_credentials_from_a_file_are_used_and_never_shown(tmp_path, events):
    keys = tmp_path / "keys" / "woopra.json"
    keys.parent.mkdir()
    keys.write_text(json.dumps({"app_id": "app-1", "secret_key": SECRET}))
    server = StandIn(port=0, import_keys=("app-1", SECRET)).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WOOPRA_")}
        args = import_args(tmp_path, events, server, "file", "--woopra_credentials", str(keys))
        done = subprocess.run([sys.executable, "-m", "pipeline", "--sink", "import", *args], cwd=ROOT,
                              env=subprocess_env() | env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        assert json.loads((tmp_path / "file.json").read_text())["imported"] == EVENTS
        keys.unlink()  # the one file allowed to hold it
        scan_for_secret(tmp_path, done, server)
    finally:
        server.stop()


def test_a_slice_and_each_id_once_apply_as_on_the_tracking_path(tmp_path, events):
    lines = events.read_text().splitlines(keepends=True)[:200]  # 20 visitors
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_text("".join(lines + lines))
    times = sorted(datetime.fromisoformat(json.loads(line)["timestamp"]) for line in lines)
    start, end = (times[at].replace(microsecond=0) for at in (50, 150))
    done = run_import("--input", str(doubled), "--woopra_project", "example.com", "--start", start.isoformat(),
                      "--end", end.isoformat(),
                      "--dry_run", str(tmp_path / "dry") + "/", "--dead_letter", str(tmp_path / "dead") + "/",
                      "--summary", str(tmp_path / "s.json"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    in_slice = sum(start <= t < end for t in times)
    assert (summary["read"], summary["duplicate"], summary["balanced"]) == (400, 200, True)
    assert (summary["would_import"], summary["out_of_range"]) == (in_slice, 200 - in_slice)
    visits = [v for body in (tmp_path / "dry").glob("import-*.ndjson") for v in parse_import_body(body.read_text())[0]]
    times_ms = [a["time"] for v in visits for a in v.get("actions", [])]
    assert len(times_ms) == len(set(times_ms)) <= in_slice  # each event once (identifies carry no action)


def test_the_call_budget_holds_end_to_end(tmp_path, events):
    server = StandIn(port=0, import_keys=("app-1", SECRET)).start()
    try:
        done = run_import(*import_args(tmp_path, events, server, "budget", "--import_max_visits", "25",
                                       "--import_budget", "2/s,600/h"))
        assert done.returncode == 0, done.stderr
        summary = json.loads((tmp_path / "budget.json").read_text())
        assert (summary["imported"], summary["import_calls"]) == (EVENTS, VISITS // 25)
        arrived = sorted(r["received_at"] for r in server.requests)
        # 6 calls at most 2 a second: the fifth and sixth start 2 s after the first two.
        assert arrived[5] - arrived[0] >= 1.9
        assert all(sum(at <= other < at + 0.9 for other in arrived) <= 2 for at in arrived)
    finally:
        server.stop()
