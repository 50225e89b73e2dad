"""Operator tools end to end: a job run with failures, its dead letters summarized and replayed by
reason, and its HTML run report (content, and rendered in headless Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from shlex import quote as shlex_quote

import pytest

from pipeline.tools.report import SENT_COLOUR, counts_directory
from tests.conftest import ROOT, SAMPLES, subprocess_env
from tests.e2e.test_end_to_end import SAMPLE_DELIVERABLE, read_jsonl, run_pipeline
from woopra_standin import Rule, StandIn

OUTCOMES = ("invalid", "too_large", "consent_denied", "consent_missing", "unsupported", "dropped_unmapped",
            "skipped_replay", "delivered_200", "delivered_202", "rejected", "retries_exhausted")
PII = ("jane.doe@example.com", "203.0.113.50", "AH47DHS5SF182DIQZJD", "bob.smith@example.org")


@pytest.fixture(scope="module")
def server():
    standin = StandIn(port=0).start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory, server):
    """The sample delivered once, Woopra refusing Product Viewed (400) and failing Logged In (500)."""
    out = tmp_path_factory.mktemp("run")
    server.set_rules([Rule(match={"event": "product_viewed"}, statuses=[400], body='{"error":"bad request"}'),
                      Rule(match={"event": "login"}, statuses=[500])])
    done = run_pipeline("--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
                        "--woopra_endpoint", server.url, "--max_attempts", "1", "--dead_letter", f"{out}/dead/",
                        "--summary", str(out / "summary.json"), "--report", str(out / "report.html"))
    server.set_rules([])
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_the_run_summary_is_a_readable_table(failed_run):
    out, stdout = failed_run
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["rejected"], summary["retries_exhausted"], summary["invalid"]) == (1, 1, 5)
    assert summary["delivered_200"] == SAMPLE_DELIVERABLE - 2 and summary["skipped_replay"] == 0
    assert re.search(r"^  delivered_200 +14 +51\.9%$", stdout, re.MULTILINE)
    assert re.search(r"^  dead-lettered +7 +25\.9%  top reasons: invalid 5, rejected 1, retries_exhausted 1$",
                     stdout, re.MULTILINE)
    assert "accounting: read 27 = outcomes 27 (ok)" in stdout
    assert f"report: {out / 'report.html'}" in stdout


def dead_letter_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.dead_letters", *args], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=60)


def test_summarize_counts_the_dead_letters_of_the_run(failed_run):
    out, _ = failed_run
    as_json = dead_letter_tool("summarize", str(out / "dead"), "--json")
    as_text = dead_letter_tool("summarize", str(out / "dead" / "*.jsonl"))
    assert as_json.returncode == 0 and as_text.returncode == 0, as_json.stderr + as_text.stderr

    summary = json.loads(as_json.stdout)
    assert summary["records"] == 7 and summary["not_dead_letters"] == 0
    assert summary["by_reason"] == {"invalid_event": 4, "invalid_json": 1, "rejected": 1, "retries_exhausted": 1}
    assert summary["by_status"] == {"none": 5, "400": 1, "500": 1}
    assert summary["by_event"]["track 'Logged In'"] == 2  # the failed login, and the one with a bad timestamp
    assert summary["by_event"]["track 'Product Viewed'"] == 1
    assert summary["by_event"]["(no event: unparseable input)"] == 1
    errors = {(e["reason"], e["error"]): e["count"] for e in summary["top_errors"]}
    assert errors[("rejected", "HTTP 400")] == 1 and errors[("retries_exhausted", "HTTP 500")] == 1
    assert summary["failed_at"]["first"] <= summary["failed_at"]["last"]

    text = as_text.stdout
    assert text.startswith("Dead letters: 7 records in ")
    assert re.search(r"^  invalid_event +4 +57\.1%$", text, re.MULTILINE)
    assert re.search(r"^ +1  rejected +HTTP 400$", text, re.MULTILINE)
    assert "--replay_reasons rejected,retries_exhausted" in text
    for secret in PII:
        assert secret not in text


def test_filter_keeps_only_the_named_reasons(failed_run, tmp_path):
    out, _ = failed_run
    done = dead_letter_tool("filter", str(out / "dead"), "--reasons", "rejected,retries_exhausted",
                            "--out", str(tmp_path / "failed.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "kept 2 of 7" in done.stdout
    kept = [json.loads(line) for line in (tmp_path / "failed.jsonl").read_text().splitlines()]
    assert sorted(d["reason"] for d in kept) == ["rejected", "retries_exhausted"]
    bad = dead_letter_tool("summarize", str(tmp_path / "nothing-here"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: no dead-letter files at")


def test_replay_of_rejected_only_skips_the_other_reasons_and_balances(failed_run, server, tmp_path):
    out, _ = failed_run
    server.reset()  # Woopra now accepts everything: the rejected event goes through
    done = run_pipeline("--input", str(out / "dead" / "*.jsonl"), "--woopra_project", "mywebsite.com",
                        "--woopra_endpoint", server.url, "--replay_reasons", "rejected",
                        "--dead_letter", f"{tmp_path}/replay_dead/", "--summary", str(tmp_path / "replay.json"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "replay.json").read_text())
    assert summary["read"] == 7
    assert (summary["skipped_replay"], summary["delivered_200"], summary["invalid"]) == (6, 1, 0)
    assert summary["read"] == sum(summary[k] for k in OUTCOMES) and summary["balanced"] is True
    assert [r["params"]["event"] for r in server.requests] == ["product_viewed"]
    assert read_jsonl(tmp_path / "replay_dead") == []
    assert re.search(r"^  skipped_replay +6 +85\.7%$", done.stdout, re.MULTILINE)


# ----- the HTML run report ------------------------------------------------------------------------------

def test_report_page_has_the_numbers_and_is_self_contained(failed_run):
    out, _ = failed_run
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not Path(counts_directory(str(out / "report.html"))).exists()  # the intermediate counts are gone
    cards = dict(re.findall(r'<div class="label">([^<]+)</div><div class="value">([^<]+)</div>', page))
    assert cards == {"Read": "27", "Delivered": "14", "Dead-lettered": "7", "Filtered": "6",
                     "Retried requests": "0", "Throughput": cards["Throughput"]}
    assert "accounting: read 27 = outcomes 27 (ok)" in page
    assert '<td><code>delivered_200</code></td><td class="num">14</td><td class="num">51.9%</td>' in page
    assert '<td><code>invalid_event</code></td><td class="num">4</td><td class="num">14.8%</td>' in page
    assert "<code>HTTP 400</code>" in page and "<code>HTTP 500</code>" in page
    # The chart: one delivered bar per minute with a delivery, event time (not run time) on the axis.
    assert page.count(f'fill="{SENT_COLOUR}"/>') == 14
    assert "<title>03-07 09:00 UTC: 0 delivered, 3 dead-lettered</title>" in page
    assert "<title>03-02 09:16 UTC: 0 delivered, 1 dead-lettered</title>" in page
    assert "2 events have no event time" in page and "a dashed line marks a gap in time" in page
    for external in ("<script", "<link", "src=", "@import", "url("):
        assert external not in page
    for secret in PII:
        assert secret not in page


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_renders_in_headless_chromium(failed_run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:  # fail, never skip: a skipped render would pass CI untested
        pytest.fail("chromium is not installed: run scripts/test.sh, or apt-get install -y chromium", pytrace=False)
    out, _ = failed_run
    page = (out / "report.html").as_uri()
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([*flags, f"--user-data-dir={profile}", "--dump-dom", page],
                             capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = re.sub(r"<[^>]+>", " ", dom.stdout)
    assert "Woopra delivery report" in text and "Events per minute of event time" in text
    assert re.search(r"Delivered\s+14\s+51\.9% of read", text)
    assert re.search(r"Dead-lettered\s+7\s+25\.9% of read", text)
    # 14 minutes with a delivery; 3 with dead letters (09:16 rejected, 07:45 failed, 03-07 09:00 invalid).
    assert dom.stdout.count("<rect ") == 14 + 3

    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([*flags, f"--user-data-dir={profile}", "--window-size=1100,1800",
                               f"--screenshot={shot}", page], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    assert _png_size(shot) == (1100, 1800)
    assert shot.stat().st_size > 50_000  # a page of text and bars, not a blank one


def test_dry_run_report_charts_the_requests_that_would_be_sent(tmp_path):
    report = tmp_path / "report.html"
    done = run_pipeline("--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
                        "--dry_run", f"{tmp_path}/dry/", "--dead_letter", f"{tmp_path}/dead/", "--report", str(report))
    assert done.returncode == 0, done.stderr
    page = report.read_text(encoding="utf-8")
    assert "Woopra delivery report (dry run)" in page
    assert '<div class="label">Would send</div><div class="value">16</div>' in page
    assert page.count(f'fill="{SENT_COLOUR}"/>') == SAMPLE_DELIVERABLE  # each at its own minute
    assert "<title>03-02 09:21 UTC: 1 would send, 0 dead-lettered</title>" in page


def test_the_debugger_piped_into_head_ends_quietly():
    # `python -m pipeline.debug ... | head -2`: the reader leaves early; that is not an error.
    command = (f"{shlex_quote(sys.executable)} -m pipeline.debug samples/events.jsonl --config samples/mapping.yaml"
               " | head -2; echo \"debug exit ${PIPESTATUS[0]}\" >&2")
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.splitlines()[0] == "Event 1 of 27 (samples/events.jsonl:1)"
    assert len(done.stdout.splitlines()) == 2
    assert done.stderr == "debug exit 0\n"  # no BrokenPipeError, no traceback


def test_the_debuggers_hint_names_where_send_would_send():
    def response(*more: str) -> str:
        done = subprocess.run([sys.executable, "-m", "pipeline.debug", "samples/events.jsonl", "--config",
                               "samples/mapping.yaml", "--events", "6", *more], cwd=ROOT, env=subprocess_env(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return next(line for line in done.stdout.splitlines() if " Response " in line)

    assert response() == ("7 Response  not sent (--send sends it to https://www.woopra.com/track: the real Woopra, "
                          "under the project above)")
    assert response("--woopra_endpoint", "http://127.0.0.1:8080/track") == (
        "7 Response  not sent (--send sends it to http://127.0.0.1:8080/track)")
