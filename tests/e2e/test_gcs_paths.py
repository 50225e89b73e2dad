"""Every path may be ``gs://`` (docs/behaviour.md#command-line): the job and its tools against a
local Cloud Storage emulator, started by these tests, and the local Woopra stand-in.

The job runs as ``python -m pipeline`` in a subprocess whose working folder must stay empty:
nothing it reads or writes is on the local disk.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, subprocess_env
from tests.support.gcs_emulator import GcsEmulator, running_gcs_emulator
from tests.support.generated_events import generated_events
from transforms.delivery.ledger import REMOTE_FLUSH_SECONDS
from woopra_standin import StandIn

SAMPLE_READ = 27
SAMPLE_INVALID = 5
SAMPLE_DELIVERED = 16


@pytest.fixture(scope="module")
def gcs(tmp_path_factory) -> Iterator[GcsEmulator]:
    """The emulator with the samples and a runner config uploaded."""
    with running_gcs_emulator(tmp_path_factory.mktemp("gcs")) as emulator:
        emulator.upload("in/events.jsonl", (SAMPLES / "events.jsonl").read_bytes())
        emulator.upload("in/mapping.yaml", (SAMPLES / "mapping.yaml").read_bytes())
        emulator.upload("in/local.yaml", (ROOT / "runner_configs" / "local.yaml").read_bytes())
        yield emulator


def run_module(gcs: GcsEmulator, cwd: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` with ``gs://`` sent to the emulator; bounded in time."""
    cwd.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env={**subprocess_env(), **gcs.env},
                          capture_output=True, text=True, timeout=240)


def jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode("utf-8").split("\n") if line]


def test_a_batch_job_reads_and_writes_gs_and_the_tools_read_its_dead_letters_from_there(gcs, standin, tmp_path):
    cwd = tmp_path / "cwd"
    done = run_module(gcs, cwd, "pipeline", "--runner_config", "gs://bucket/in/local.yaml",
                      "--input", "gs://bucket/in/events.jsonl", "--config", "gs://bucket/in/mapping.yaml",
                      "--woopra_endpoint", standin.url, "--dead_letter", "gs://bucket/run1/dead/",
                      "--summary", "gs://bucket/run1/summary.json", "--report", "gs://bucket/run1/report.html")
    assert done.returncode == 0, done.stderr

    summary = json.loads(gcs.download("run1/summary.json"))
    assert (summary["read"], summary["invalid"], summary["delivered_200"]) == (
        SAMPLE_READ, SAMPLE_INVALID, SAMPLE_DELIVERED)
    assert summary["balanced"] and not summary["dry_run"]
    assert len(standin.requests) == SAMPLE_DELIVERED
    # The mapping came from the gs:// config: its project is on every request.
    assert {request["params"]["project"] for request in standin.requests} == {"mywebsite.com"}

    dead_files = gcs.names("run1/dead/")
    assert dead_files == [f"run1/dead/dead_letters-{summary['run_id']}-00000-of-00001.jsonl"]
    dead = jsonl(gcs.download(dead_files[0]))
    assert len(dead) == SAMPLE_INVALID and {record["reason"] for record in dead} <= {"invalid_json", "invalid_event"}
    page = gcs.download("run1/report.html").decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "input <code>gs://bucket/in/events.jsonl</code>" in page
    assert "UTC: 1 delivered, 0 dead-lettered" in page  # the chart's bars, from counts the job wrote to gs://
    assert list(cwd.iterdir()) == []  # no dead_letter/ folder, no summary: the runner config's local default lost

    tool = run_module(gcs, cwd, "pipeline.dead_letters", "summarize", "gs://bucket/run1/dead/", "--json")
    assert tool.returncode == 0, tool.stderr
    counted = json.loads(tool.stdout)
    assert (counted["files"], counted["records"]) == ([f"gs://bucket/{dead_files[0]}"], SAMPLE_INVALID)
    assert sum(counted["by_reason"].values()) == SAMPLE_INVALID
    assert set(counted["by_reason"]) == {record["reason"] for record in dead}


def test_the_debugger_reads_its_events_and_config_from_gs(gcs, tmp_path):
    done = run_module(gcs, tmp_path / "cwd", "pipeline.debug", "gs://bucket/in/events.jsonl",
                      "--config", "gs://bucket/in/mapping.yaml", "--json")
    assert done.returncode == 0, done.stderr
    traces = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(traces) == SAMPLE_READ
    assert all(trace["source"].startswith("gs://bucket/in/events.jsonl") for trace in traces)
    assert sum(trace["parse"]["result"] == "invalid" for trace in traces) == SAMPLE_INVALID


def test_a_dry_run_writes_its_requests_to_gs(gcs, standin, tmp_path):
    cwd = tmp_path / "cwd"
    done = run_module(gcs, cwd, "pipeline", "--input", "gs://bucket/in/events.jsonl",
                      "--config", "gs://bucket/in/mapping.yaml", "--dead_letter", "gs://bucket/run2/dead/",
                      "--dry_run", "gs://bucket/run2/requests/", "--summary", "gs://bucket/run2/summary.json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(gcs.download("run2/summary.json"))
    assert summary["dry_run"] and summary["would_send"] == SAMPLE_DELIVERED
    request_files = gcs.names("run2/requests/")
    assert len(request_files) == 1 and summary["run_id"] in request_files[0]
    assert len(jsonl(gcs.download(request_files[0]))) == SAMPLE_DELIVERED
    assert len(jsonl(gcs.download(gcs.names("run2/dead/")[0]))) == SAMPLE_INVALID
    assert standin.requests == []
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize("flag, message", [
    ("--config", "error: cannot read config file gs://bucket/in/missing.yaml: No such file or directory"),
    ("--runner_config", "error: --runner_config: cannot read gs://bucket/in/missing.yaml: No such file or directory"),
])
def test_a_missing_gs_file_is_one_line(gcs, tmp_path, flag, message):
    done = run_module(gcs, tmp_path / "cwd", "pipeline", "--input", "gs://bucket/in/events.jsonl",
                      "--woopra_project", "example.com", flag, "gs://bucket/in/missing.yaml")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == message, done.stderr


def test_the_debugger_names_a_missing_gs_file_in_one_line(gcs, tmp_path):
    done = run_module(gcs, tmp_path / "cwd", "pipeline.debug", "gs://bucket/in/missing.jsonl",
                      "--woopra_project", "example.com")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: cannot read gs://bucket/in/missing.jsonl: No such file or directory"], done.stderr


def test_a_ledger_on_gs_records_every_delivered_event_and_a_rerun_sends_nothing(gcs, standin, tmp_path):
    args = ("--runner_config", "gs://bucket/in/local.yaml", "--input", "gs://bucket/in/events.jsonl",
            "--config", "gs://bucket/in/mapping.yaml", "--woopra_endpoint", standin.url,
            "--dead_letter", "gs://bucket/ledger-run/dead/", "--ledger", "gs://bucket/ledger-run/ledger",
            "--summary", "gs://bucket/ledger-run/summary.json")
    before = len(standin.requests)
    first = run_module(gcs, tmp_path / "cwd", "pipeline", *args)
    assert first.returncode == 0, first.stderr
    assert len(standin.requests) - before == SAMPLE_DELIVERED
    objects = gcs.names("ledger-run/ledger/")
    assert objects and all(name.endswith(".keys") for name in objects)
    keys = [line for name in objects for line in gcs.download(name).decode("ascii").split("\n") if line]
    assert len(keys) == len(set(keys)) == SAMPLE_DELIVERED and all(len(key) == 32 for key in keys)

    again = run_module(gcs, tmp_path / "cwd", "pipeline", *args)
    assert again.returncode == 0, again.stderr
    summary = json.loads(gcs.download("ledger-run/summary.json"))
    assert (summary["skipped_ledger"], summary["delivered_200"], summary["balanced"]) == (SAMPLE_DELIVERED, 0, True)
    assert len(standin.requests) - before == SAMPLE_DELIVERED  # nothing sent twice


RATE = 100
# Delivered but not in the ledger at a kill: the keys of the last upload interval, and the requests in flight.
UNRECORDED_AT_MOST = int(REMOTE_FLUSH_SECONDS * RATE) + 2 * 8


def test_a_gs_ledger_survives_kill_9_and_the_resumed_run_delivers_every_event(gcs, tmp_path):
    """The ledger on gs://: killed mid-run, the job resumes from the objects its uploader wrote,
    and every event is delivered; sent twice at most what the last upload interval and the
    requests in flight held (docs/backfill.md#resuming-with-the-ledger)."""
    events = generated_events(tmp_path, 1500)
    server = StandIn(port=0, delay_ms=10).start()
    try:
        args = ["--input", str(events), "--woopra_project", "example.com", "--woopra_endpoint", server.url,
                "--dead_letter", str(tmp_path / "dead") + "/", "--ledger", "gs://bucket/backfill/ledger",
                "--rate_limit", str(RATE), "--max_in_flight", "8", "--summary", str(tmp_path / "s.json")]
        job = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env={**subprocess_env(), **gcs.env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 120
        while len(server.requests) < 1000 and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.02)
        assert job.poll() is None, job.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
        time.sleep(0.5)
        sent_before_kill = len(server.requests)
        assert gcs.names("backfill/ledger/"), "the uploader wrote nothing in the seconds before the kill"

        resumed = run_module(gcs, tmp_path / "cwd", "pipeline", *args)
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads((tmp_path / "s.json").read_text())
        assert summary["balanced"] and summary["skipped_ledger"] + summary["delivered_200"] == 1500
        assert summary["skipped_ledger"] >= sent_before_kill - UNRECORDED_AT_MOST
        keys = collections.Counter(
            (r["path"], r["params"].get("cookie"), r["params"].get("timestamp"), r["params"].get("event"))
            for r in server.requests)
        assert len(keys) == 1500  # every event delivered
        assert sum(n - 1 for n in keys.values()) <= UNRECORDED_AT_MOST
        assert len(server.requests) - sent_before_kill == summary["delivered_200"]
    finally:
        server.stop()
