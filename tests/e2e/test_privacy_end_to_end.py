"""Privacy end to end: emails, IPs and cookies belong in dead-letter and dry-run files only (README,
"Dead letters and replay"), never in what the job prints. A whole batch run and a whole streaming run
at ``--log_level DEBUG``, the most verbose, print no email, visitor IP, cookie or request URL of their
input on stdout or stderr (where every log line goes). The secrets are read off samples/events.jsonl
and off the requests the stand-in received, never typed in by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import SAMPLES
from tests.e2e.test_end_to_end import SAMPLE_DELIVERABLE, run_pipeline
from woopra_standin import Rule

SAMPLE_LINES = (SAMPLES / "events.jsonl").read_text().splitlines()


def _strings(value: Any) -> Iterator[tuple[str, str]]:
    """Every (key, string value) pair anywhere in a JSON value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, str):
                yield key, inner
            else:
                yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)


def sample_secrets() -> dict[str, set[str]]:
    """The sample's emails, visitor IPs, cookies and page URLs, found by field, not listed by hand."""
    found: dict[str, set[str]] = {"email": set(), "ip": set(), "cookie": set(), "url": set()}
    for line in SAMPLE_LINES:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        for key, value in _strings(event):
            if "@" in value and "." in value.split("@")[-1]:
                found["email"].add(value)
            elif key == "ip":
                found["ip"].add(value)
            elif key == "woopra_cookie":
                found["cookie"].add(value)
            elif key in ("url", "referrer") and value.startswith("http") and len(value.split("/", 3)) > 3 \
                    and value.split("/", 3)[3]:
                found["url"].add(value)  # a page URL with a path; a bare origin names no visitor
    return found


def test_the_sample_has_secrets_of_every_kind():
    secrets = sample_secrets()
    assert {"jane.doe@example.com", "bob.smith@example.org", "carol@example.net"} <= secrets["email"]
    assert {"203.0.113.50", "198.51.100.23", "192.0.2.77"} <= secrets["ip"]
    assert {"AH47DHS5SF182DIQZJD", "K2M9QX7BT4WA", "DENIED00COOKIE"} <= secrets["cookie"]
    assert "https://shop.example.com/pricing?ref=nav" in secrets["url"]


def request_urls(received: list[dict]) -> set[str]:
    """The request URLs (path and query, any origin) the stand-in received: the job's own requests."""
    return {f"{r['path']}?{r['query']}" for r in received}


def assert_nothing_leaks(output: str, secrets: dict[str, set[str]], urls: set[str]) -> None:
    leaks = [(kind, value) for kind, values in secrets.items() for value in values if value in output]
    leaks += [("request URL", url[:80] + "...") for url in urls if url in output or url.split("?", 1)[1] in output]
    assert not leaks, f"found in the job's output: {leaks}"


def test_a_debug_batch_run_prints_no_personal_data(tmp_path, standin):
    # Faults as well, so the retry, rejection and dead-letter paths log too.
    standin.set_rules([
        Rule(match={"event": "product_viewed"}, statuses=[400], body='{"error":"unknown project"}'),
        Rule(match={"event": "pv"}, statuses=[503, 200]),
        Rule(match={"_path": "identify"}, statuses=[429, 200], retry_after="0"),
    ])
    done = run_pipeline("--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
                        "--woopra_endpoint", standin.url, "--dead_letter", str(tmp_path / "dead") + "/",
                        "--summary", str(tmp_path / "summary.json"), "--log_level", "DEBUG")
    assert done.returncode == 0, done.stderr[-3000:]
    assert " DEBUG " in done.stderr, "no DEBUG line: the run was not at the most verbose level"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["rejected"], summary["retried_requests"]) == (1, 5)
    assert "jane.doe@example.com" in json.dumps(standin.requests)  # the secrets did flow through the job
    urls = request_urls(standin.requests)
    assert len(urls) == SAMPLE_DELIVERABLE
    assert_nothing_leaks(done.stdout + done.stderr, sample_secrets(), urls)


@pytest.mark.pubsub
def test_a_debug_streaming_run_prints_no_personal_data(debug_streaming_run):
    run = debug_streaming_run
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.requests) >= SAMPLE_DELIVERABLE, f"stand-in got {len(run.requests)} requests"
    assert " DEBUG " in run.stderr and "progress: read=" in run.stderr
    assert "jane.doe@example.com" in json.dumps(run.requests)  # the secrets did flow through the job
    assert_nothing_leaks(run.stdout + run.stderr, sample_secrets(), request_urls(run.requests))
