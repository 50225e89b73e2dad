"""End to end: ``python -m pipeline`` run as a user would, against the local Woopra stand-in."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, subprocess_env
from transforms.rules.identity import fallback_cookie
from woopra_standin import Rule

SEED_PURCHASE = {
    "project": "mywebsite.com", "response": "json", "timeout": "1800000", "ce_app": "datafly-signal",
    "event": "purchase", "cookie": "AH47DHS5SF182DIQZJD", "ip": "203.0.113.50",
    "cv_email": "jane.doe@example.com", "cv_name": "Jane Doe", "ce_order_id": "ORD-001",
    "ce_amount": "149.95", "ce_currency": "USD", "ce_coupon": "WELCOME10",
}
SEED_USER_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
                   "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
SAMPLE_CAROL_COOKIE = fallback_cookie("c0ffee00-1111-4222-8333-444455556666")
SAMPLE_DELIVERABLE = 16  # sample events that pass parsing, consent and mapping


def run_pipeline(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the job as a subprocess; bounded in time."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def read_jsonl(pattern_dir: Path) -> list[dict]:
    records = []
    for path in sorted(pattern_dir.glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


def sample_args(tmp_path: Path, endpoint: str) -> list[str]:
    return ["--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
            "--woopra_endpoint", endpoint, "--dead_letter", str(tmp_path / "dead") + "/",
            "--summary", str(tmp_path / "summary.json")]


@pytest.mark.canary
def test_sample_is_delivered_exactly_as_the_seed_says(tmp_path, standin):
    done = run_pipeline(*sample_args(tmp_path, standin.url))
    assert done.returncode == 0, done.stderr

    received = standin.requests
    assert len(received) == SAMPLE_DELIVERABLE
    purchases = [r for r in received if r["params"].get("event") == "purchase"]
    assert len(purchases) == 1  # the consent-missing purchase was not sent
    purchase = purchases[0]
    assert purchase["path"] == "/track/ce/"
    for key, value in SEED_PURCHASE.items():
        assert purchase["params"][key] == value, key
    assert purchase["headers"]["user-agent"] == SEED_USER_AGENT
    assert purchase["params"]["cv_id"] == "user-123"
    assert purchase["params"]["timestamp"] == "1772443307005"
    identifies = [r for r in received if r["path"] == "/track/identify/"]
    assert {r["params"]["cv_email"] for r in identifies} == {"jane.doe@example.com", "bob.smith@example.org"}
    assert all("event" not in r["params"] for r in identifies)
    denied_cookies = {"DENIED00COOKIE"}
    assert not any(r["params"].get("cookie") in denied_cookies for r in received)
    # Issue 21, item 1: Carol has no Woopra cookie; both of her calls (one with her email) carry the
    # cookie derived from her anonymousId, and the userId-only login carries cv_id alone.
    carol = [r for r in received if r["params"].get("event") in ("lead", "signup")]
    assert len(carol) == 2 and carol[0]["params"]["cookie"] == carol[1]["params"]["cookie"] == SAMPLE_CAROL_COOKIE
    # Issue 21, item 2: Bob's pricing page view names its address as Woopra's tracker does.
    pricing = next(r for r in received if r["params"].get("ce_title") == "Pricing")
    assert (pricing["params"]["ce_url"], pricing["params"]["ce_uri"], pricing["params"]["ce_domain"]) == (
        "/pricing?ref=nav", "https://shop.example.com/pricing?ref=nav", "shop.example.com")
    login = next(r for r in received if r["params"].get("event") == "login")
    assert "cookie" not in login["params"] and login["params"]["cv_id"] == "user-789"

    dead = read_jsonl(tmp_path / "dead")
    assert sorted(d["reason"] for d in dead) == ["invalid_event"] * 4 + ["invalid_json"]
    assert next(d for d in dead if d["reason"] == "invalid_json")["raw"].startswith('{"type": "track"')

    summary = json.loads((tmp_path / "summary.json").read_text())
    outcomes = ["invalid", "too_large", "consent_denied", "consent_missing", "unsupported",
                "dropped_unmapped", "delivered_200", "delivered_202", "rejected", "retries_exhausted"]
    assert summary["read"] == 27
    assert summary["read"] == sum(summary[k] for k in outcomes)
    assert (summary["invalid"], summary["consent_denied"], summary["consent_missing"], summary["unsupported"],
            summary["delivered_200"]) == (5, 2, 1, 3, SAMPLE_DELIVERABLE)
    assert "accounting: read 27 = outcomes 27 (ok)" in done.stdout


def test_faults_are_retried_rejected_or_honour_retry_after(tmp_path, standin):
    standin.set_rules([
        Rule(match={"event": "product_viewed"}, statuses=[400], body='{"error":"unknown project"}'),
        Rule(match={"event": "pv"}, statuses=[503, 200]),
        Rule(match={"_path": "identify"}, statuses=[429, 200], retry_after="1"),
    ])
    done = run_pipeline(*sample_args(tmp_path, standin.url), "--max_attempts", "3")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())

    received = standin.requests
    page_views = [r for r in received if r["params"].get("event") == "pv"]
    identifies = [r for r in received if r["path"] == "/track/identify/"]
    assert len(page_views) == 2 * 3 and sorted(r["attempt"] for r in page_views) == [1, 1, 1, 2, 2, 2]
    assert len(identifies) == 2 * 2
    for first, second in _attempt_pairs(identifies):
        assert second["received_at"] - first["received_at"] >= 0.95  # Retry-After: 1 was honoured

    assert summary["rejected"] == 1  # Jane's Product Viewed (the denied one never left)
    assert summary["retried_requests"] == 3 + 2
    assert summary["delivered_200"] == SAMPLE_DELIVERABLE - 1
    dead = [d for d in read_jsonl(tmp_path / "dead") if d["reason"] == "rejected"]
    assert len(dead) == 1
    assert dead[0]["status"] == 400 and dead[0]["response_body"] == '{"error":"unknown project"}'
    assert dead[0]["event"]["event"] == "Product Viewed"
    assert dead[0]["request"]["params"]["event"] == "product_viewed"
    assert dead[0]["attempts"] == 1
    assert summary["balanced"] is True


def _attempt_pairs(records):
    by_query: dict[str, list[dict]] = {}
    for record in records:
        by_query.setdefault(record["query"], []).append(record)
    return [sorted(pair, key=lambda r: r["attempt"]) for pair in by_query.values()]


def test_exhausted_retries_become_dead_letters(tmp_path, standin):
    standin.set_rules([Rule(match={"event": "login"}, statuses=[500])])
    done = run_pipeline(*sample_args(tmp_path, standin.url), "--max_attempts", "2")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["retries_exhausted"] == 1 and summary["retried_requests"] == 1
    dead = [d for d in read_jsonl(tmp_path / "dead") if d["reason"] == "retries_exhausted"]
    assert [(d["status"], d["attempts"], d["event"]["userId"]) for d in dead] == [(500, 2, "user-789")]


def test_dry_run_writes_what_would_be_sent_and_sends_nothing(tmp_path, standin):
    done = run_pipeline(*sample_args(tmp_path, standin.url), "--dry_run", str(tmp_path / "dry") + "/")
    assert done.returncode == 0, done.stderr
    assert standin.requests == []
    written = read_jsonl(tmp_path / "dry")
    assert len(written) == SAMPLE_DELIVERABLE
    purchase = next(r for r in written if r["params"].get("event") == "purchase")
    assert purchase["method"] == "GET" and purchase["url"] == standin.url + "/ce/"
    assert {k: purchase["params"][k] for k in SEED_PURCHASE} == SEED_PURCHASE
    assert purchase["headers"] == {"User-Agent": SEED_USER_AGENT}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["would_send"] == SAMPLE_DELIVERABLE and summary["delivered_200"] == 0
    assert summary["balanced"] is True
    # Files carrying emails and IPs are readable by their owner only (README, "Dead letters and replay").
    dry_files, dead_files = list((tmp_path / "dry").glob("*.jsonl")), list((tmp_path / "dead").glob("*.jsonl"))
    assert dry_files and dead_files, f"nothing to check: dry-run {dry_files}, dead letters {dead_files}"
    for path in dry_files + dead_files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_dead_letters_replay_as_input(tmp_path, standin):
    first = run_pipeline(*sample_args(tmp_path, standin.url))
    assert first.returncode == 0, first.stderr
    replay_dir = tmp_path / "replay"
    done = run_pipeline("--input", str(tmp_path / "dead" / "*.jsonl"), "--woopra_project", "mywebsite.com",
                        "--woopra_endpoint", standin.url, "--dead_letter", str(replay_dir) + "/",
                        "--summary", str(tmp_path / "replay.json"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "replay.json").read_text())
    assert summary["read"] == 5 and summary["invalid"] == 5
    replayed = read_jsonl(replay_dir)
    assert sorted(d["reason"] for d in replayed) == ["invalid_event"] * 4 + ["invalid_json"]
    original_raw = next(d for d in read_jsonl(tmp_path / "dead") if d["reason"] == "invalid_json")["raw"]
    assert next(d for d in replayed if d["reason"] == "invalid_json")["raw"] == original_raw


@pytest.mark.parametrize(("args", "message"), [
    ([], "give exactly one of --input, --input_subscription, --input_topic"),
    (["--input", "x.jsonl", "--input_topic", "projects/p/topics/t"], "give exactly one of"),
    (["--input", "x.jsonl"], "--woopra_project is required"),
    (["--input", "x.jsonl", "--woopra_project", "p", "--rate_limit", "0"], "--rate_limit must be at least"),
    (["--input", "x.jsonl", "--woopra_project", "p", "--max_in_flight", "many"], "--max_in_flight must be a whole"),
    (["--input", "x.jsonl", "--woopra_project", "p", "--woopra_endpoint", "http://woopra.example/track"],
     "--woopra_endpoint must use https://"),
    (["--input", "x.jsonl", "--woopra_project", "p", "--max_in_flght", "3"], "unknown option --max_in_flght"),
    (["--input", "x.jsonl", "--config", "no/such/file.yaml"], "cannot read config file"),
    (["--input_subscription", "projects/my-project/subscriptions/s", "--woopra_project", "p"], "needs --streaming"),
])
def test_bad_options_fail_fast_with_one_line(args, message):
    done = run_pipeline(*args, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr


def test_bad_config_key_is_named(tmp_path):
    config = tmp_path / "mapping.yaml"
    config.write_text("project: p\nevents:\n  Order Completed: purchase\ntimout: 5\n")
    done = run_pipeline("--input", "x.jsonl", "--config", str(config), timeout=60)
    assert done.returncode == 2
    assert "unknown config key 'timout'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_runner_config_supplies_defaults_and_flags_win(tmp_path, standin):
    runner_config = tmp_path / "runner.yaml"
    runner_config.write_text(f"woopra_project: from-runner-config.example\nwoopra_endpoint: {standin.url}\n"
                             "rate_limit: 500\n")
    done = run_pipeline("--runner_config", str(runner_config), "--input", str(SAMPLES / "events.jsonl"),
                        "--woopra_project", "from-flag.example", "--dead_letter", str(tmp_path / "dead") + "/")
    assert done.returncode == 0, done.stderr
    assert {r["params"]["project"] for r in standin.requests} == {"from-flag.example"}
    assert len(standin.requests) == SAMPLE_DELIVERABLE
