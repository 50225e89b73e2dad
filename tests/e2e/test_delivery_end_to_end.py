"""Delivery failures end to end: ``python -m pipeline`` against the stand-in, as a user runs it.

An untrusted TLS certificate is rejected at once; a retry budget runs out by real elapsed time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.e2e.test_end_to_end import SAMPLE_DELIVERABLE, read_jsonl, run_pipeline, sample_args
from tests.support.self_signed import write_self_signed
from woopra_standin import Rule, StandIn
from woopra_standin.server import tls_context


def test_untrusted_certificate_dead_letters_every_request_at_once(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    with StandIn(port=0, ssl_context=tls_context(str(cert), str(key))) as server:
        assert server.url.startswith("https://")
        done = run_pipeline(*sample_args(tmp_path, server.url), "--max_attempts", "5")
        received = server.requests
    assert done.returncode == 3, done.stderr[-4000:]  # nothing delivered
    assert "TLS certificate of 127.0.0.1:" in done.stdout  # the cause, in the summary
    assert received == []  # nothing got past the handshake
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rejected"] == SAMPLE_DELIVERABLE  # every request that would have been sent
    assert summary["delivered_200"] == summary["delivered_202"] == summary["retries_exhausted"] == 0
    assert summary["retried_requests"] == 0
    rejected = [d for d in read_jsonl(tmp_path / "dead") if d["reason"] == "rejected"]
    assert len(rejected) == SAMPLE_DELIVERABLE
    for dead in rejected:
        assert (dead["status"], dead["attempts"]) == (None, 1)
        assert "certificate verify failed" in dead["error"], dead["error"]
        assert dead["request"]["url"].startswith(server.url)


def test_retry_budget_runs_out_by_elapsed_time_not_by_attempts(tmp_path: Path, standin: StandIn) -> None:
    standin.set_rules([Rule(match={"_path": "/track/"}, statuses=[503])])  # Woopra down for good
    started = time.monotonic()
    done = run_pipeline(*sample_args(tmp_path, standin.url), "--max_attempts", "100", "--max_retry_seconds", "2",
                        timeout=60)
    wall = time.monotonic() - started
    assert done.returncode == 3, done.stderr[-4000:]  # nothing delivered
    assert f"retries_exhausted {SAMPLE_DELIVERABLE}: HTTP 503 from 127.0.0.1:" in done.stdout
    assert 2 <= wall < 30
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["retries_exhausted"] == SAMPLE_DELIVERABLE
    assert summary["delivered_200"] == summary["rejected"] == 0
    exhausted = [d for d in read_jsonl(tmp_path / "dead") if d["reason"] == "retries_exhausted"]
    assert len(exhausted) == SAMPLE_DELIVERABLE
    # Backoff 0.5 s doubling, each wait between half and all of it: the waits before attempts 2
    # and 3 fit in 2 s whatever the jitter (at most 1.5 s), a fourth try may, a fifth never does.
    assert all(3 <= d["attempts"] <= 4 for d in exhausted), [d["attempts"] for d in exhausted]
    assert all(d["status"] == 503 for d in exhausted)
    assert summary["retried_requests"] == sum(d["attempts"] - 1 for d in exhausted)
    # Measured on the stand-in's clock: every request's attempts spanned real waits, within 2 s.
    by_query: dict[str, list[float]] = {}
    for record in standin.requests:
        by_query.setdefault(record["query"], []).append(record["received_at"])
    assert len(by_query) == SAMPLE_DELIVERABLE
    for times in by_query.values():
        span = max(times) - min(times)
        assert 0.7 <= span <= 2.2, span  # at least the two shortest waits (0.25 s + 0.5 s)
