"""The event debugger, ``python -m pipeline.debug``: the documented purchase example stage by stage."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.tools import debug
from tests.conftest import ROOT, SAMPLES, subprocess_env
from tests.e2e.test_end_to_end import SEED_PURCHASE, SEED_USER_AGENT
from transforms.rules.consent import ConsentPolicy
from transforms.rules.events import RawInput
from transforms.rules.woopra_mapping import WoopraRequest, WoopraSettings
from woopra_standin import Rule

# The documented identify of Jane Doe, then her purchase (docs/behaviour.md#worked-example-a-purchase).
SEED_IDENTIFY = {
    "type": "identify", "anonymousId": "f47ac10b-58cc-4372-a567-0d02b2c3d479", "userId": "user-123",
    "timestamp": "2026-03-02T09:18:05.000Z",
    "traits": {"email": "jane.doe@example.com", "name": "Jane Doe", "company": "Acme Ltd"},
    "context": {"ip": "203.0.113.50", "userAgent": SEED_USER_AGENT, "consent": {"analytics": True}},
    "vendor_ids": {"woopra_cookie": "AH47DHS5SF182DIQZJD"},
}
SEED_ORDER = {
    "type": "track", "event": "Order Completed", "messageId": "0b6e4f5c-9d2a-4c7e-8f11-2a3b4c5d6e02",
    "anonymousId": "f47ac10b-58cc-4372-a567-0d02b2c3d479", "userId": "user-123",
    "timestamp": "2026-03-02T09:21:47.005Z",
    "properties": {"order_id": "ORD-001", "revenue": 149.95, "currency": "USD", "coupon": "WELCOME10"},
    "traits": {},
    "context": {"ip": "203.0.113.50", "userAgent": SEED_USER_AGENT,
                "page": {"url": "https://shop.example.com/checkout", "path": "/checkout", "title": "Checkout",
                         "referrer": "https://www.google.com/"},
                "consent": {"analytics": True, "marketing": False}},
    "vendor_ids": {"woopra_cookie": "AH47DHS5SF182DIQZJD"},
}
REDACTED = {"cookie": "AH47***", "ip": "203.0.113.x", "cv_email": "j***@example.com"}
SECRETS = ("jane.doe@example.com", "jane.doe%40example.com", "203.0.113.50", "AH47DHS5SF182DIQZJD")


@pytest.fixture
def seed_file(tmp_path):
    path = tmp_path / "seed.jsonl"
    path.write_text(json.dumps(SEED_IDENTIFY) + "\n" + json.dumps(SEED_ORDER) + "\n")
    return path


def run_debug(*args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.debug", *args], cwd=ROOT, env=subprocess_env(),
                          input=input_text, capture_output=True, text=True, timeout=60)


def test_json_request_params_are_the_seeds_redacted_by_default_and_exact_with_show_pii(seed_file):
    redacted = run_debug(str(seed_file), "--woopra_project", "mywebsite.com", "--json")
    exact = run_debug(str(seed_file), "--woopra_project", "mywebsite.com", "--json", "--show-pii")
    assert redacted.returncode == 0 and exact.returncode == 0, redacted.stderr + exact.stderr

    identify, purchase = (json.loads(line) for line in exact.stdout.splitlines())
    assert identify["request"]["url"] == "https://www.woopra.com/track/identify/"
    assert purchase["request"]["method"] == "GET" and purchase["request"]["url"] == "https://www.woopra.com/track/ce/"
    params = purchase["request"]["params"]
    for key, value in SEED_PURCHASE.items():
        assert params[key] == value, key
    assert params["cv_id"] == "user-123" and params["timestamp"] == "1772443307005"
    assert purchase["request"]["headers"] == {"User-Agent": SEED_USER_AGENT}
    assert "cv_email=jane.doe%40example.com" in purchase["request"]["full_url"]
    assert purchase["consent"] == {"outcome": "granted", "allowed": True, "shape": "context.consent",
                                   "detail": "all required categories granted"}
    email = next(v for v in purchase["identity"]["values"] if v["name"] == "email")
    assert (email["source"], email["from_index"], email["at"]) == ("remembered", 1, "2026-03-02T09:18:05.000Z")
    assert purchase["outcome"] == "would_send"

    _, shown = (json.loads(line) for line in redacted.stdout.splitlines())
    assert shown["request"]["params"] == {**params, **REDACTED}
    for secret in SECRETS:
        assert secret not in redacted.stdout


def test_text_output_shows_every_stage_with_pii_redacted(seed_file):
    done = run_debug(str(seed_file), "--woopra_project", "mywebsite.com")
    assert done.returncode == 0, done.stderr
    purchase = done.stdout.split("Event 2 of 2")[1]
    for stage in ("1 Input", "2 Parse", "3 Consent", "4 Identity", "5 Mapping", "6 Request", "7 Response"):
        assert f"\n{stage}" in purchase, stage
    assert 'ok: track "Order Completed"' in purchase
    assert "granted: all required categories granted" in purchase
    assert re.search(r"cookie +AH47\*\*\* +from this event", purchase)
    assert re.search(r"email +j\*\*\*@example.com +remembered from event 1 at 2026-03-02T09:18:05.000Z", purchase)
    assert "'Order Completed' → event=purchase (preset)" in purchase
    assert "GET https://www.woopra.com/track/ce/?project=mywebsite.com&response=json&timeout=1800000" in purchase
    # Parameters one per line, in the documented order, redacted where they are personal data.
    expected = {**SEED_PURCHASE, **REDACTED}
    for key, value in expected.items():
        assert re.search(rf"^ +{key} +{re.escape(value)}( |$)", purchase, re.MULTILINE), key
    assert f"User-Agent: {SEED_USER_AGENT}" in purchase
    assert "Outcome     would_send" in purchase
    for secret in SECRETS:
        assert secret not in done.stdout


def test_show_pii_shows_the_email_and_stdin_works(seed_file, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(seed_file.read_text()))
    assert debug.run(["-", "--woopra_project", "mywebsite.com", "--show-pii"]) == 0
    out = capsys.readouterr().out
    assert "jane.doe@example.com" in out and "cookie=AH47DHS5SF182DIQZJD" in out and "ip=203.0.113.50" in out


def test_send_delivers_to_the_standin_and_shows_the_response(seed_file, standin):
    done = run_debug(str(seed_file), "--woopra_project", "mywebsite.com", "--woopra_endpoint", standin.url, "--send")
    assert done.returncode == 0, done.stderr
    purchase = done.stdout.split("Event 2 of 2")[1]
    assert re.search(r"7 Response +HTTP 200\n +delivered_200 in \d+ ms\n +body: \{\"success\":true\}", purchase)
    assert "Outcome     delivered_200" in purchase
    received = [r for r in standin.requests if r["path"] == "/track/ce/"]
    assert len(received) == 1 and len(standin.requests) == 2
    assert {k: received[0]["params"][k] for k in SEED_PURCHASE} == SEED_PURCHASE
    assert received[0]["headers"]["user-agent"] == SEED_USER_AGENT


def test_send_shows_a_refusal_and_exits_1(seed_file, standin, capsys):
    standin.set_rules([Rule(match={"event": "purchase"}, statuses=[400], body='{"error":"unknown project"}')])
    code = debug.run([str(seed_file), "--woopra_project", "mywebsite.com", "--woopra_endpoint", standin.url,
                      "--send", "--json"])
    assert code == 1
    purchase = json.loads(capsys.readouterr().out.splitlines()[1])
    assert purchase["response"]["status"] == 400 and purchase["response"]["body"] == '{"error":"unknown project"}'
    assert purchase["outcome"] == "rejected"
    assert len(standin.requests) == 2  # once each: the debugger never retries


@pytest.mark.parametrize(("args", "message"), [
    (["--woopra_endpoint", "http://woopra.example/track"], "--woopra_endpoint must use https://"),
    (["--consent_default", "maybe"], "--consent_default must be deny or allow"),
    (["--max_in_flght", "3"], "unrecognized arguments: --max_in_flght"),
    (["--config", "no/such.yaml"], "cannot read config file"),
])
def test_bad_options_are_one_line_and_exit_2(seed_file, capsys, args, message):
    assert debug.run([str(seed_file), "--woopra_project", "p", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_missing_event_file_and_missing_project_exit_2(tmp_path, capsys):
    assert debug.run([str(tmp_path / "nope.jsonl"), "--woopra_project", "p"]) == 2
    assert debug.run([str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: cannot read") and "--woopra_project is required" in err[1]


# ----- the identity stage, in process ----------------------------------------------------------------

SETTINGS = WoopraSettings(project="mywebsite.com")


def trace(*events: dict, policy: ConsentPolicy = ConsentPolicy()) -> list[debug.EventTrace]:
    return debug.trace_events([RawInput(json.dumps(e), f"f:{i}") for i, e in enumerate(events, 1)], SETTINGS, policy,
                              30.0)


def test_identity_is_applied_in_event_time_order_whatever_the_file_order():
    later_in_file = dict(SEED_IDENTIFY)
    order, identify = trace(SEED_ORDER, later_in_file)
    assert (order.identity.position, identify.identity.position) == (2, 1)
    email = next(v for v in order.identity.values if v.name == "email")
    assert (email.source, email.from_index) == ("remembered", 2)
    assert dict(order.mapping.params)["cv_email"] == "jane.doe@example.com"


def test_cookie_remembered_from_an_earlier_event_or_derived_as_fallback():
    without_cookie = {k: v for k, v in SEED_ORDER.items() if k not in ("vendor_ids", "userId")}
    first, second = trace(SEED_IDENTIFY, without_cookie)
    cookie = next(v for v in second.identity.values if v.name == "cookie")
    assert (cookie.value, cookie.source, cookie.from_index) == ("AH47DHS5SF182DIQZJD", "remembered", 1)

    anonymous = dict(without_cookie, anonymousId="anon-1")
    (alone,) = trace(anonymous)
    cookie = next(v for v in alone.identity.values if v.name == "cookie")
    assert cookie.source == "fallback" and len(cookie.value) == 24
    assert "fallback: derived from anonymousId" in debug.format_trace(alone, 1, SETTINGS, ConsentPolicy(), False)


def test_filtered_events_teach_nothing_and_outcomes_are_the_summary_keys():
    denied_identify = dict(SEED_IDENTIFY, context={"consent": {"analytics": False}})
    identify, order, group, broken = trace(denied_identify, SEED_ORDER, {"type": "group", "anonymousId": "a"},
                                           {"type": "track", "anonymousId": "a"})
    assert identify.outcome == "consent_denied" and identify.identity is None
    assert not any(v.name == "email" for v in order.identity.values)  # the denied identify taught nothing
    assert isinstance(order.mapping, WoopraRequest) and order.outcome == "would_send"
    assert (group.outcome, broken.outcome) == ("unsupported", "invalid")


def test_dead_letter_records_are_replayed_or_skipped_like_the_job_does():
    record = {"reason": "rejected", "error": "HTTP 400", "status": 400, "failed_at": "2026-11-26T10:00:00Z",
              "event": SEED_ORDER, "raw": None}
    inputs = [RawInput(json.dumps(record), "dl:1"),
              RawInput(json.dumps(dict(record, reason="retries_exhausted")), "dl:2")]
    replayed, skipped = debug.trace_events(inputs, SETTINGS, ConsentPolicy(), 30.0, frozenset({"rejected"}))
    assert replayed.outcome == "would_send" and skipped.outcome == "skipped_replay"
    text = debug.format_trace(replayed, 2, SETTINGS, ConsentPolicy(), False)
    assert "(a dead-letter record: reason rejected, HTTP 400, failed at 2026-11-26T10:00:00Z" in text


def test_read_inputs_takes_one_object_an_array_or_json_lines(tmp_path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps(SEED_ORDER, indent=2))
    many = tmp_path / "many.json"
    many.write_text(json.dumps([SEED_IDENTIFY, SEED_ORDER]))
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps(SEED_IDENTIFY) + "\n\n{broken\n")
    assert len(debug.read_inputs(str(one))) == 1
    assert [r.source for r in debug.read_inputs(str(many))] == [f"{many}[0]", f"{many}[1]"]
    assert [r.source for r in debug.read_inputs(str(lines))] == [f"{lines}:1", f"{lines}:3"]


def test_events_option_shows_only_the_chosen_events_but_all_teach_identity(seed_file, capsys):
    assert debug.run([str(seed_file), "--woopra_project", "p", "--events", "2", "--json"]) == 0
    (only,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert only["index"] == 2 and only["request"]["params"]["cv_email"] == "j***@example.com"
    assert debug.run([str(seed_file), "--woopra_project", "p", "--events", "3"]) == 2
    assert "error: --events must be positions from 1 to 2, got '3'" in capsys.readouterr().err


# ----- the job's input formats: JSON lines, gzipped JSON lines, Parquet -----------------------------

SAMPLE_PURCHASE = 6  # samples/events.jsonl's seed purchase, by position


@pytest.fixture
def sample_files(tmp_path):
    """The sample events as .jsonl, .jsonl.gz and .parquet (its one undecodable line left out)."""
    events = []
    for line in (SAMPLES / "events.jsonl").read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass  # a Parquet file holds only objects
    plain, gzipped, parquet = tmp_path / "events.jsonl", tmp_path / "events.jsonl.gz", tmp_path / "events.parquet"
    text = "".join(json.dumps(event) + "\n" for event in events)
    plain.write_text(text)
    with gzip.open(gzipped, "wt") as handle:
        handle.write(text)
    # The purchase's own keys first, so its row reads back in its key order; nested objects as JSON
    # strings, which the job decodes (struct columns would add every other row's keys as nulls).
    columns = list(events[SAMPLE_PURCHASE - 1]) + [key for event in events for key in event]
    pq.write_table(pa.table({
        key: [json.dumps(e[key]) if isinstance(e.get(key), dict) else e.get(key) for e in events]
        for key in dict.fromkeys(columns)
    }), parquet)
    return plain, gzipped, parquet


def shown(path, capsys, *args: str) -> str:
    assert debug.run([str(path), "--config", str(SAMPLES / "mapping.yaml"), *args]) == 0
    return capsys.readouterr().out


def without_file_name(output: str, source_prefix: str) -> str:
    """The output with the sources' file name taken out (the rule under a title is as long as the title)."""
    return re.sub("─+", "─", output.replace(source_prefix, "FILE:"))


def test_gzipped_json_lines_show_exactly_what_the_plain_file_shows(sample_files, capsys):
    plain, gzipped, _ = sample_files
    assert without_file_name(shown(gzipped, capsys), f"{gzipped}:") == without_file_name(shown(plain, capsys),
                                                                                         f"{plain}:")


def test_parquet_rows_show_what_the_json_lines_show_and_events_picks_rows(sample_files, capsys):
    plain, _, parquet = sample_files
    purchase = shown(parquet, capsys, "--events", str(SAMPLE_PURCHASE))
    assert f"Event {SAMPLE_PURCHASE} of 26 ({parquet}#{SAMPLE_PURCHASE})" in purchase
    assert 'ok: track "Order Completed"' in purchase and "Outcome     would_send" in purchase
    same_in_lines = shown(plain, capsys, "--events", str(SAMPLE_PURCHASE))
    assert without_file_name(purchase, f"{parquet}#") == without_file_name(same_in_lines, f"{plain}:")

    def comparable(output: str) -> list[dict]:
        records = [json.loads(line) for line in output.splitlines()]
        for record in records:
            del record["source"]
            if isinstance(record["input"], dict):  # a Parquet row has every column: nulls where a line has none
                record["input"] = {k: v for k, v in record["input"].items() if v is not None}
        return records

    assert comparable(shown(parquet, capsys, "--json")) == comparable(shown(plain, capsys, "--json"))


def test_parquet_timestamp_and_struct_columns_are_shown(tmp_path, capsys):
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table({
        "type": ["track"], "event": ["Order Completed"], "anonymousId": ["a-1"],
        "timestamp": pa.array([datetime(2026, 3, 2, 9, 21, 47, 5000, tzinfo=UTC)], pa.timestamp("ms", "UTC")),
        "context": [{"consent": {"analytics": True}}],
    }), path)
    assert debug.run([str(path), "--woopra_project", "p", "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["source"] == f"{path}#1" and record["input"]["timestamp"] == "2026-03-02 09:21:47.005000+00:00"
    assert record["parse"]["timestamp"] == "2026-03-02T09:21:47.005Z" and record["outcome"] == "would_send"


@pytest.mark.parametrize("name", ["not-parquet.parquet", "not-gzip.jsonl.gz"])
def test_a_file_that_is_not_what_its_name_says_exits_2(tmp_path, capsys, name):
    (tmp_path / name).write_text(json.dumps(SEED_ORDER) + "\n")
    assert debug.run([str(tmp_path / name), "--woopra_project", "p"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot read {tmp_path / name}: "), err


def test_a_one_line_file_is_named_by_its_line_as_the_job_names_it(tmp_path):
    path = tmp_path / "one.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps(SEED_ORDER) + "\n")
    assert [r.source for r in debug.read_inputs(str(path))] == [f"{path}:1"]
