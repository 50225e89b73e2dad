"""The event debugger, ``python -m pipeline.debug``: the documented purchase example stage by stage."""

from __future__ import annotations

import collections
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
from tests.e2e.test_end_to_end import SEED_PURCHASE, SEED_USER_AGENT, read_jsonl, run_pipeline
from transforms.rules.consent import ConsentPolicy
from transforms.rules.event_id import event_id, ledger_key
from transforms.rules.events import RawInput
from transforms.rules.outcomes import Outcome
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
    assert "derived from anonymousId" in debug.format_trace(alone, 1, SETTINGS, ConsentPolicy(), False)


def test_identified_calls_without_a_woopra_cookie_show_the_derived_cookie():
    """Issue 21, item 1: the identify and the purchase carry the cookie the page view had."""
    identify = {k: v for k, v in SEED_IDENTIFY.items() if k != "vendor_ids"}
    order = {k: v for k, v in SEED_ORDER.items() if k != "vendor_ids"}
    page = {"type": "page", "anonymousId": identify["anonymousId"], "timestamp": "2026-03-02T09:00:00Z",
            "context": {"consent": {"analytics": True}, "page": {"url": "https://shop.example.com/"}}}
    traces = trace(page, identify, order)
    cookies = {dict(t.mapping.params)["cookie"] for t in traces}
    assert len(cookies) == 1 and len(cookies.pop()) == 24
    assert all(next(v for v in t.identity.values if v.name == "cookie").source == "fallback" for t in traces)


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


def test_the_debugger_reads_a_json_array_as_the_job_does(tmp_path):
    """Issue 21, item 5: the job reads a .json array as its items; the debugger's positions match."""
    from transforms.read_events import records_from_path

    many = tmp_path / "export.json"
    many.write_text(json.dumps([SEED_IDENTIFY, SEED_ORDER], indent=2))
    job = [(r.source, json.loads(r.payload)) for r in records_from_path(str(many))]
    assert job == [(f"{many}[0]", SEED_IDENTIFY), (f"{many}[1]", SEED_ORDER)]
    assert [(r.source, json.loads(r.payload)) for r in debug.read_inputs(str(many))] == job


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


# ----- a backfill's outcomes: duplicate, out_of_range, skipped_ledger --------------------------------

def copy_of(event: dict, **changes) -> dict:
    return {**event, **changes}


def test_a_later_copy_is_a_duplicate_naming_the_copy_sent_and_teaching_identity_nothing():
    # The identify again, later and saying something else: a copy of one id, so only the first counts.
    resent_identify = copy_of(SEED_IDENTIFY, messageId="id-1", timestamp="2026-03-02T09:19:00.000Z",
                              traits={"email": "other@example.com", "plan": "pro"})
    identify, order, resent = trace(copy_of(SEED_IDENTIFY, messageId="id-1"), SEED_ORDER, resent_identify)
    assert resent.outcome == "duplicate" and resent.identity is None and resent.mapping is None
    assert (resent.copies.sent_index, resent.copies.indexes, resent.copies.event_id) == (1, (1, 3), "id-1")
    assert identify.outcome == "would_send" and not identify.duplicate
    params = dict(order.mapping.params)
    assert params["cv_email"] == "jane.doe@example.com" and "cv_plan" not in params  # the copy taught nothing
    assert (order.identity.position, order.identity.of) == (2, 2)

    text = debug.format_trace(resent, 3, SETTINGS, ConsentPolicy(), False)
    assert "4 Identity  duplicate: event 1 of the file is the copy of this event the job sends" in text
    assert "event id id-1 (its messageId): 2 copies in the file, event 1 sent, event 3 counted duplicate" in text
    assert "Mapping" not in text and "Request" not in text
    assert text.endswith("Outcome     duplicate: another copy of this event (same id) is sent instead: counted, "
                         "not sent")
    sent_text = debug.format_trace(identify, 3, SETTINGS, ConsentPolicy(), False)
    assert "2 copies in the file, this one sent, event 3 counted duplicate" in sent_text


def test_the_copy_sent_is_the_jobs_first_copy_not_the_first_line_and_ids_without_message_id_hash_content():
    later_in_file_earlier_in_time = copy_of(SEED_ORDER, timestamp="2026-03-02T09:20:00.000Z")
    no_id = {k: v for k, v in SEED_ORDER.items() if k != "messageId"}
    denied = copy_of(SEED_ORDER, messageId="denied", context={"consent": {"analytics": False}})
    traces = trace(SEED_ORDER, later_in_file_earlier_in_time, no_id, dict(reversed(no_id.items())), denied, denied)
    assert [t.outcome for t in traces] == ["duplicate", "would_send", "would_send", "duplicate",
                                           "consent_denied", "consent_denied"]  # only consented calls are deduplicated
    assert traces[0].copies.sent_index == 2
    content = traces[3].copies
    assert content.event_id.startswith("content:") and not content.from_message_id and content.sent_index == 3
    text = debug.format_trace(traces[3], 6, SETTINGS, ConsentPolicy(), False)
    assert f"event id {content.event_id} (a hash of its content: no messageId): 2 copies in the file" in text


@pytest.fixture
def slice_file(tmp_path):
    """An identify before the slice, a purchase in it, a purchase after it."""
    after = copy_of(SEED_ORDER, messageId="after", timestamp="2026-03-03T08:00:00.000Z")
    path = tmp_path / "slice.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in (SEED_IDENTIFY, SEED_ORDER, after)))
    return path


def test_out_of_range_events_are_shown_and_still_teach_identity(slice_file, capsys):
    flags = [str(slice_file), "--woopra_project", "p", "--start", "2026-03-02T09:20:00Z", "--end", "2026-03-03"]
    assert debug.run([*flags, "--json"]) == 0
    identify, order, after = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (identify["outcome"], order["outcome"], after["outcome"]) == ("out_of_range", "would_send", "out_of_range")
    assert identify["select"]["result"] == "out_of_range" and "request" not in identify
    assert "identity" in identify  # the job selects after identity
    assert order["select"] == {"result": "to_send", "ledger_key": None, "detail":
                               "event time 2026-03-02T09:21:47.005Z is in the slice from 2026-03-02T09:20:00.000Z "
                               "(--start, inclusive) to 2026-03-03T00:00:00.000Z (--end, exclusive)"}
    assert order["request"]["params"]["cv_email"] == "j***@example.com"  # from the identify before the slice

    assert debug.run(flags) == 0
    first, second, third = capsys.readouterr().out.split("\nEvent ")
    assert ("5 Select    out_of_range: event time 2026-03-02T09:18:05.000Z is outside the slice from "
            "2026-03-02T09:20:00.000Z (--start, inclusive) to 2026-03-03T00:00:00.000Z (--end, exclusive) "
            "(not sent)") in first
    assert "(identity still learned from it: the job selects after identity)" in first
    assert "4 Identity" in first and "Mapping" not in first
    assert "Outcome     out_of_range: its event time is outside --start/--end: counted, not sent" in first
    assert "5 Select    to send: event time 2026-03-02T09:21:47.005Z is in the slice" in second
    assert "6 Mapping" in second and "7 Request" in second and "8 Response" in second
    assert "Outcome     out_of_range" in third


def write_ledger(folder, *events: dict) -> None:
    """A ledger file as the job writes it: one ledger_key a line, in hex."""
    folder.mkdir()
    keys = [ledger_key(event["anonymousId"], event_id(event)).hex() for event in events]
    (folder / "delivered-run-1-abc.keys").write_text("".join(key + "\n" for key in keys))


def test_delivered_events_are_skipped_ledger_and_the_others_say_they_are_not_in_it(slice_file, tmp_path, capsys):
    write_ledger(tmp_path / "ledger", SEED_ORDER)
    flags = [str(slice_file), "--woopra_project", "p", "--ledger", str(tmp_path / "ledger")]
    assert debug.run([*flags, "--json"]) == 0
    identify, order, after = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    key = ledger_key(SEED_ORDER["anonymousId"], SEED_ORDER["messageId"]).hex()
    assert (identify["outcome"], order["outcome"], after["outcome"]) == ("would_send", "skipped_ledger", "would_send")
    assert order["select"]["result"] == "skipped_ledger" and order["select"]["ledger_key"] == key
    assert "request" not in order and "identity" in order
    assert after["request"]["params"]["cv_email"] == "j***@example.com"

    assert debug.run([*flags, "--events", "2,3"]) == 0
    order_text, after_text = capsys.readouterr().out.split("\nEvent ")
    assert (f"5 Select    skipped_ledger: an earlier run delivered it: its ledger key {key} is in --ledger "
            f"{tmp_path / 'ledger'} (1 key in 1 file at launch) (not sent)") in order_text
    assert ("Outcome     skipped_ledger: an earlier run delivered this event (its visitor and id are in --ledger)"
            in order_text)
    assert "5 Select    to send: its ledger key " in after_text and " is not in --ledger " in after_text


def test_a_missing_ledger_folder_settles_nothing_and_is_not_created(slice_file, tmp_path, capsys):
    assert debug.run([str(slice_file), "--woopra_project", "p", "--ledger", str(tmp_path / "new"), "--json"]) == 0
    assert {json.loads(line)["outcome"] for line in capsys.readouterr().out.splitlines()} == {"would_send"}
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--start", "yesterday"], "--start: 'yesterday' is not an ISO 8601 date or date-time"),
    (["--start", "2026-03-02", "--end", "2026-03-01"], "--end must be after --start"),
    (["--ledger", "FILE"], "--ledger must be a folder"),
])
def test_bad_backfill_options_are_the_jobs_errors_in_one_line(seed_file, capsys, args, message):
    args = [str(seed_file) if arg == "FILE" else arg for arg in args]
    assert debug.run([str(seed_file), "--woopra_project", "p", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_the_debugger_counts_and_requests_are_the_jobs_dry_run(tmp_path, capsys):
    """Copies, a slice and a ledger together: the debugger's outcomes are the job's summary, and the
    requests it would send are the job's dry-run requests, identity included."""
    events = [
        copy_of(SEED_IDENTIFY, messageId="id-1"),
        copy_of(SEED_IDENTIFY, messageId="id-1", timestamp="2026-03-02T09:19:00.000Z",
                traits={"email": "other@example.com", "plan": "pro"}),  # a copy: teaches nothing
        SEED_ORDER,
        copy_of(SEED_ORDER, timestamp="2026-03-02T09:30:00.000Z"),  # a later copy of the purchase
        copy_of(SEED_ORDER, messageId="settled", timestamp="2026-03-02T10:00:00.000Z"),
        copy_of(SEED_ORDER, messageId="late", timestamp="2026-03-04T10:00:00.000Z"),  # after the slice
        copy_of(SEED_IDENTIFY, messageId="id-2", timestamp="2026-03-05T10:00:00.000Z",
                traits={"plan": "enterprise"}),  # after the slice too
        {k: v for k, v in SEED_ORDER.items() if k not in ("messageId", "userId", "vendor_ids")},
        {k: v for k, v in SEED_ORDER.items() if k not in ("messageId", "userId", "vendor_ids")},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    write_ledger(tmp_path / "ledger", events[4])
    # The identify is before the slice: out_of_range, and still what the purchases carry.
    shared = ["--woopra_project", "mywebsite.com", "--start", "2026-03-02T09:20:00Z", "--end", "2026-03-03",
              "--ledger", str(tmp_path / "ledger")]

    done = run_pipeline("--input", str(path), *shared, "--runner", "FnApiRunner",
                        "--dry_run_output", str(tmp_path / "requests") + "/", "--dead_letter",
                        str(tmp_path / "dead") + "/", "--summary", str(tmp_path / "summary.json"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())

    assert debug.run([str(path), *shared, "--json", "--show-pii"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    counts = collections.Counter(s["outcome"] for s in shown)
    assert counts == {"duplicate": 3, "out_of_range": 3, "skipped_ledger": 1, "would_send": 2}
    assert summary["read"] == len(events) and summary["balanced"]
    assert {str(o): summary[o] for o in Outcome if summary.get(o)} == counts
    debugger_params = sorted(json.dumps(s["request"]["params"], sort_keys=True) for s in shown if "request" in s)
    job_params = sorted(json.dumps(r["params"], sort_keys=True) for r in read_jsonl(tmp_path / "requests"))
    assert debugger_params == job_params
    assert {json.loads(p)["cv_email"] for p in job_params} == {"jane.doe@example.com"}


def test_a_peers_cookie_is_named_with_the_field_it_came_from():
    """Issue 21, item 4: the debugger says which field the cookie was read from."""
    rudder = {k: v for k, v in SEED_ORDER.items() if k != "vendor_ids"}
    rudder["context"] = dict(rudder["context"], externalId=[{"type": "woopraId", "id": "RUDDERCOOKIE"}])
    (only,) = trace(rudder)
    cookie = next(v for v in only.identity.values if v.name == "cookie")
    assert (cookie.value, cookie.source, cookie.field) == ("RUDDERCOOKIE", "event", "context.externalId woopraId")
    assert "from this event (context.externalId woopraId)" in debug.format_trace(
        only, 1, SETTINGS, ConsentPolicy(), True)


def test_the_request_says_where_the_trackers_parameters_come_from():
    """Issue 21, items 2 and 3: the debugger names the source of url, uri, campaign, language, screen."""
    page = {"type": "page", "anonymousId": "anon-1", "timestamp": "2026-03-02T09:00:00Z",
            "context": {"consent": {"analytics": True}, "locale": "en-GB", "screen": {"width": 1440, "height": 900},
                        "page": {"url": "https://s.example/p?utm_campaign=spring"}}}
    (only,) = trace(page)
    text = debug.format_trace(only, 1, SETTINGS, ConsentPolicy(), True)
    assert re.search(r"ce_url +/p\?utm_campaign=spring +\(the page's path and query", text)
    assert re.search(r"ce_uri +https://s.example/p\?utm_campaign=spring +\(the page's full address", text)
    assert re.search(r"ce_campaign_name +spring +\(campaign: utm_/woo_", text)
    assert re.search(r"language +en-GB +\(context.locale\)", text)
    assert re.search(r"screen +1440x900 +\(context.screen\)", text)
