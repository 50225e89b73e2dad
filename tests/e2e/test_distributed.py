"""The job run distributed (docs/development.md#distributed-runs): Beam's portable runner with its job
service and an external SDK worker pool in separate processes, and the multi-processing local runner
holding the job-wide rate limit."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, SAMPLES, subprocess_env
from tests.support.distributed import BeamServices, job_rate, request_multiset, write_track_events

PORTABLE_CONFIG = ROOT / "runner_configs" / "portable.yaml"
SAMPLE_DELIVERED = 16  # sample events that pass parsing, consent and mapping
RUN_TIMEOUT = 120  # seconds; each run takes 10 to 40
# What differs between two runs of the same input: when they ran.
RUN_DEPENDENT_KEYS = ("elapsed_seconds", "events_per_second", "run_id", "files")  # files: named by run id


def run_pipeline(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline`` as a user runs it, bounded in time."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)


def sample_job(out: Path, endpoint: str) -> list[str]:
    """The sample job's flags, with absolute paths: a worker in another process has another working directory."""
    return ["--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
            "--woopra_endpoint", endpoint, "--dead_letter", f"{out / 'dead'}/", "--summary", str(out / "summary.json")]


def counts(summary_path: Path) -> dict[str, Any]:
    """A summary without what depends on when the run ran."""
    summary = json.loads(summary_path.read_text())
    return {key: value for key, value in summary.items() if key not in RUN_DEPENDENT_KEYS}


def dead_letters(folder: Path) -> tuple[list[tuple[str, str]], set[int]]:
    """The dead letters (reason and what was read, in order) and the permission bits of their files."""
    records, modes = [], set()
    for path in sorted(folder.glob("*.jsonl")):
        modes.add(stat.S_IMODE(os.stat(path).st_mode))
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted((r["reason"], json.dumps([r["event"], r["raw"]], sort_keys=True)) for r in records), modes


def test_portable_runner_with_an_external_worker_pool_sends_what_the_local_run_sends(tmp_path, standin):
    local = run_pipeline(*sample_job(tmp_path / "local", standin.url))
    assert local.returncode == 0, local.stderr
    local_requests = standin.requests
    standin.reset()

    services_dir = tmp_path / "services"  # the worker pool's working directory, not the launcher's
    services_dir.mkdir()
    with BeamServices(services_dir, subprocess_env()) as services:
        # portable.yaml's endpoints are overridden by the flags: a command-line flag wins.
        portable = run_pipeline(*sample_job(tmp_path / "portable", standin.url),
                                "--runner_config", str(PORTABLE_CONFIG),
                                "--job_endpoint", services.job_endpoint, "--environment_config", services.worker_pool)
        assert portable.returncode == 0, portable.stderr[-4000:] + services.logs()
        worker_pool_log = services.logs()
    portable_requests = standin.requests

    # The job ran in an SDK worker the pool started, not in the launcher.
    assert "Starting worker with command" in worker_pool_log
    assert len(local_requests) == SAMPLE_DELIVERED
    # Samples carry their timestamps, so every parameter, timestamp included, must match.
    assert all("timestamp" in r["params"] for r in portable_requests)
    assert request_multiset(portable_requests) == request_multiset(local_requests)
    assert [r["attempt"] for r in portable_requests] == [1] * SAMPLE_DELIVERED

    # The launcher reads the counters back from the job service: the same summary.
    assert counts(tmp_path / "portable" / "summary.json") == counts(tmp_path / "local" / "summary.json")
    assert counts(tmp_path / "portable" / "summary.json")["delivered_200"] == SAMPLE_DELIVERED
    assert "accounting: read 27 = outcomes 27 (ok)" in portable.stdout

    # The same dead letters, owner-only although the worker pool runs with umask 022.
    local_dead, local_modes = dead_letters(tmp_path / "local" / "dead")
    portable_dead, portable_modes = dead_letters(tmp_path / "portable" / "dead")
    assert len(portable_dead) == 5
    assert portable_dead == local_dead
    assert local_modes == portable_modes == {0o600}


EVENTS = 600
RATE_LIMIT = 40.0
RATE_TOLERANCE = 0.03


def test_multi_processing_holds_the_job_wide_rate_limit(tmp_path, standin):
    events = write_track_events(tmp_path / "events.jsonl", EVENTS, visitors=150)
    done = run_pipeline("--input", str(events), "--woopra_project", "distributed.example",
                        "--woopra_endpoint", standin.url, "--dead_letter", f"{tmp_path / 'dead'}/",
                        "--summary", str(tmp_path / "summary.json"),
                        "--direct_running_mode=multi_processing", "--direct_num_workers=2",
                        "--rate_limit", f"{RATE_LIMIT:g}")
    assert done.returncode == 0, done.stderr[-4000:]
    received = standin.requests

    # Every event delivered exactly once: each sequence number arrived once, at its first attempt.
    assert Counter(int(r["params"]["ce_seq"]) for r in received) == Counter(range(EVENTS))
    assert {(r["status"], r["attempt"]) for r in received} == {(200, 1)}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["read"], summary["delivered_200"], summary["balanced"]) == (EVENTS, EVENTS, True)

    # Two processes each send at half the job's rate: together the job's rate, measured from the
    # stand-in's receive times over the whole run ((n - 1) requests after the first, over the span).
    # One process sending alone would give half of it, each sending the whole rate twice it.
    rate = job_rate([r["received_at"] for r in received])
    assert abs(rate - RATE_LIMIT) <= RATE_TOLERANCE * RATE_LIMIT, f"{rate:.2f} requests/s"
