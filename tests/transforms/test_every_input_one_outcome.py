"""Any input, however hostile, ends as exactly one counted outcome (docs/behaviour.md, "Dead letters").

Property-based: Hypothesis feeds arbitrary JSON values, event-shaped objects with arbitrary
fields, arbitrary bytes and arbitrary text (lone surrogates included) through the per-event
chain the job applies (parse, event time, consent, identity facts and timeline, mapping, URL
encoding, dead-letter and dry-run writing, the report's event minute) and checks that each
ends as one outcome, without an exception. A few examples also run through the real graph.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.transforms.window import TimestampedValue
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipeline.graph import build_pipeline
from pipeline.job_settings import JobSettings
from pipeline.summary import OUTCOME_KEYS, build_summary, counters_from_result
from tests.conftest import batch_pipeline
from transforms.count_per_minute import dead_letter_time_ms, minute_of
from transforms.delivery.settings import DeliverySettings
from transforms.map_to_woopra import MapToWoopra
from transforms.parse_events import invalid_dead_letter
from transforms.rules.consent import ConsentPolicy, decide_consent
from transforms.rules.dead_letters import DeadLetter, to_json_line
from transforms.rules.event_id import event_id, first_copy, ledger_key
from transforms.rules.events import MAX_DEPTH, Event, InvalidInput, NotReplayed, RawInput, Unsupported, parse_input
from transforms.rules.identity import IdentityFact, IdentityTimeline, merge_spans, with_known_identity
from transforms.rules.time_range import TimeRange
from transforms.rules.woopra_mapping import MAX_URL_BYTES, Skipped, WoopraSettings, build_request

NOW_MS = 1_780_000_000_000
SETTINGS = WoopraSettings(project="example.com", endpoint="http://127.0.0.1:9/track")
POLICY = ConsentPolicy(default="allow")
SENT = "would_send"

# Text of every kind, lone UTF-16 surrogates (category Cs) included.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)
timestamps = st.one_of(
    st.none(), st.integers(), st.floats(), any_text, st.booleans(),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["2026-03-02T09:21:47.005Z", "1900-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                     "1969-12-31T23:59:59.999Z", "2026-03-02T09:21:47+05:30", "not a date", ""]),
)
consents = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["analytics", "Analytics", "marketing", "canonical", "categories"]),
                    st.one_of(st.booleans(), st.sampled_from(["granted", "no", "1"]), json_values), max_size=3),
)
events = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["page", "track", "identify", "group", "alias", "screen"]), json_values)},
    optional={
        "event": st.one_of(st.sampled_from(["Order Completed", "Signed Up", " "]), json_values),
        "anonymousId": st.one_of(any_text, st.integers(), json_values),
        "userId": st.one_of(any_text, st.integers(), json_values),
        "messageId": any_text,
        "timestamp": timestamps,
        "properties": st.one_of(st.dictionaries(any_text, json_values, max_size=6), json_values),
        "traits": st.one_of(st.dictionaries(any_text, json_values, max_size=4), json_values),
        "context": st.one_of(st.fixed_dictionaries({}, optional={
            "ip": st.one_of(any_text, json_values),
            "userAgent": st.one_of(any_text, json_values),
            "consent": consents,
            "traits": st.one_of(st.dictionaries(any_text, json_values, max_size=3), json_values),
            "page": st.one_of(st.fixed_dictionaries({}, optional={
                "url": st.one_of(st.sampled_from(["https://x.example/a?b=1", "http://[::1", "//"]), any_text),
                "path": any_text, "title": any_text, "referrer": any_text, "search": any_text}), json_values),
        }), json_values),
        "vendor_ids": st.one_of(st.fixed_dictionaries({}, optional={"woopra_cookie": json_values}), json_values),
    },
)


def deep(depth: int) -> str:
    """JSON text of a value nested ``depth`` levels deep, alternating objects and arrays."""
    opening = "".join('{"k":' if level % 2 == 0 else "[" for level in range(depth))
    closing = "".join("}" if level % 2 == 0 else "]" for level in reversed(range(depth)))
    return opening + "1" + closing


def track_with_properties(properties_text: str) -> str:
    """A consented track call whose ``properties`` are the given JSON text."""
    return json.dumps(track(properties={"p": "HERE"})).replace('{"p": "HERE"}', properties_text)


def as_text(value: Any, ascii_only: bool) -> str | None:
    try:
        return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    except (ValueError, RecursionError):
        return None


def assert_writable(dead_letter: DeadLetter) -> dict[str, Any]:
    """A dead letter becomes one UTF-8 JSON line that keeps what was read."""
    line = to_json_line(dead_letter.to_dict())
    line.encode("utf-8")
    record = json.loads(line)
    assert record["reason"] in ("invalid_json", "invalid_event", "too_large")
    assert record["event"] is not None or record["raw"] is not None, record
    assert isinstance(minute_of(dead_letter_time_ms(dead_letter, None)), str)
    return record


def outcome_of(raw: RawInput) -> str:
    """The per-event chain of the job, rule by rule; returns the one summary key the input ends as."""
    result = parse_input(raw, now_ms=NOW_MS)
    if isinstance(result, InvalidInput):
        assert_writable(invalid_dead_letter(result))
        return "invalid"
    if isinstance(result, Unsupported):
        return "unsupported"
    if isinstance(result, NotReplayed):
        return "skipped_replay"
    assert isinstance(result, Event)
    TimestampedValue(result, result.timestamp_ms / 1000.0)  # Beam's element timestamp
    pickle.loads(pickle.dumps(result))  # what the runner's coders do between steps
    decision = decide_consent(result.original, POLICY)
    if not decision.outcome.allowed:
        return decision.outcome.value
    assert len(ledger_key(result.visitor, event_id(result.original))) == 16  # each event once, and the ledger's key
    assert first_copy([result, result]) is result
    fact = IdentityFact.of(result)
    timeline = IdentityTimeline.build(merge_spans([(fact.at_ms, fact.at_ms)], 30 * 86_400_000), [fact])
    enriched = with_known_identity(result, timeline.at(result.timestamp_ms))
    request = build_request(enriched, SETTINGS, now_ms=NOW_MS)
    if isinstance(request, Skipped):
        if request.reason == "too_large":
            assert_writable(DeadLetter("too_large", request.error, event=result.original))
            return "too_large"
        return request.reason
    assert len(request.full_url()) <= MAX_URL_BYTES
    json.loads(to_json_line(request.as_record()))
    return SENT


pytestmark = pytest.mark.canary  # also run on the newest versions (.ci/run)

OUTCOMES = {"invalid", "too_large", "unsupported", "skipped_replay", "consent_denied", "consent_missing",
            "dropped_unmapped", SENT}
# 400 examples a property in the lock lane; CI's canary lane sets a smaller budget (.ci/run).
CHAIN = settings(max_examples=int(os.environ.get("WOOPRA_PROPERTY_EXAMPLES", "400")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@CHAIN
@given(events, st.booleans(), st.booleans())
def test_every_event_shaped_object_ends_as_one_outcome(event, ascii_only, as_bytes):
    text = as_text(event, ascii_only)
    if text is None:
        return
    payload: str | bytes = text
    if as_bytes:
        payload = text.encode("utf-8", "surrogatepass")  # what a file holding the same text gives
    assert outcome_of(RawInput(payload)) in OUTCOMES


@CHAIN
@given(json_values, st.booleans())
def test_every_json_value_ends_as_one_outcome(value, ascii_only):
    text = as_text(value, ascii_only)
    if text is not None:
        assert outcome_of(RawInput(text)) in OUTCOMES


@CHAIN
@given(st.binary(max_size=200))
def test_every_byte_string_ends_as_one_outcome(data):
    assert outcome_of(RawInput(data)) in OUTCOMES


@CHAIN
@given(any_text)
def test_every_text_ends_as_one_outcome(text):
    assert outcome_of(RawInput(text)) in OUTCOMES


@CHAIN
@given(st.dictionaries(any_text, json_values, max_size=8))
def test_every_parquet_row_ends_as_one_outcome(row):
    assert outcome_of(RawInput(row)) in OUTCOMES


def track(**fields: Any) -> dict[str, Any]:
    event = {"type": "track", "event": "Order Completed", "anonymousId": "a-1",
             "timestamp": "2026-03-02T09:21:47.005Z", "context": {"consent": {"analytics": True}}}
    event.update(fields)
    return event


def test_the_reported_killers_are_dead_letters_that_keep_what_was_read():
    cases = {
        "nested 1,000 levels": track_with_properties(deep(1000)),
        "nested 100,000 levels": "[" * 100_000 + "]" * 100_000,
        "timestamp 1e20": json.dumps(track(timestamp=1e20)),
        "timestamp -1e20": json.dumps(track(timestamp=-1e20)),
        "year 1900": json.dumps(track(timestamp="1900-01-01T00:00:00Z")),
        "surrogate in a value": json.dumps(track(properties={"p": "\ud83d"})),
        "surrogate in a key": json.dumps(track(properties={"\ud83d": 1})),
        "surrogate in an invalid event": json.dumps({"type": 7, "x": "\ud83d"}),
        "NaN": '{"type": "track", "event": "x", "anonymousId": "a", "properties": {"p": NaN}}',
    }
    for name, text in cases.items():
        for payload in (text, text.encode("utf-8", "surrogatepass")):
            result = parse_input(RawInput(payload), now_ms=NOW_MS)
            assert isinstance(result, InvalidInput), name
            record = assert_writable(invalid_dead_letter(result))
            if "nested" in name:
                assert record["event"] is None and record["raw"] == text, name
                assert "nested" in record["error"]


def test_the_reported_killers_go_through_the_graph(tmp_path):
    """Each killer alone made the job fail; in one file with a good event, each is one dead letter."""
    lines = [track_with_properties(deep(1000)), json.dumps(track(timestamp=1e20)), json.dumps(track(timestamp=-1e20)),
             json.dumps(track(properties={"p": "\ud83d"})), json.dumps(track(properties={"\ud83d": 1})),
             json.dumps({"type": 7, "x": "\ud83d"}), json.dumps(track(timestamp="1900-01-01T00:00:00Z")),
             json.dumps(track(anonymousId="good"))]
    summary, records, requests = run_graph(tmp_path, [line.encode() for line in lines])
    assert (summary["read"], summary["invalid"], summary["would_send"]) == (8, 7, 1)
    assert len(records) == 7 and len(requests) == 1
    surrogate = [r for r in records if r["event"] and r["event"].get("properties") == {"p": "\ud83d"}]
    assert len(surrogate) == 1 and "lone UTF-16 surrogate" in surrogate[0]["error"]


def test_depth_limit_is_exact():
    # The event object is level 1; its properties are the deep value, from level 2 down.
    accepted = parse_input(RawInput(track_with_properties(deep(MAX_DEPTH - 1))), now_ms=NOW_MS)
    assert isinstance(accepted, Event), accepted
    refused = parse_input(RawInput(track_with_properties(deep(MAX_DEPTH))), now_ms=NOW_MS)
    assert isinstance(refused, InvalidInput)
    assert refused.error == f"invalid event: nested deeper than {MAX_DEPTH} levels"


def test_non_object_json_keeps_the_line_read_from_a_file():
    for line in (b"[1]", b"42", b'"s"', b"null", b"true"):
        result = parse_input(RawInput(line, "events.jsonl:1"))
        assert isinstance(result, InvalidInput) and result.reason == "invalid_event"
        record = invalid_dead_letter(result).to_dict()
        assert record["event"] is None and record["raw"] == line.decode()


def test_bytes_that_are_not_utf8_are_kept_exactly_and_replay_the_same():
    line = b'{"type": "track", "event": "\xff\xfe"}'
    result = parse_input(RawInput(line))
    assert isinstance(result, InvalidInput) and result.reason == "invalid_json"
    record = json.loads(invalid_dead_letter(result).to_json())
    assert base64.b64decode(record["raw_base64"]) == line
    assert record["raw"] == line.decode("utf-8", "replace")
    replayed = parse_input(RawInput(json.dumps(record)))
    assert isinstance(replayed, InvalidInput) and replayed.raw_base64 == record["raw_base64"]


def test_a_byte_order_mark_is_accepted():
    event = json.dumps(track())
    for payload in (b"\xef\xbb\xbf" + event.encode(), "\ufeff" + event):
        assert isinstance(parse_input(RawInput(payload)), Event)


class _ExplodingEvents(dict):
    """An events mapping that raises for one name: a mapping rule failing on one event."""

    def get(self, key: Any, default: Any = None) -> Any:
        if key == "Boom":
            raise RuntimeError("boom")
        return super().get(key, default)


def test_a_step_that_raises_dead_letters_that_event_and_counts_it_invalid():
    settings_ = WoopraSettings(project="example.com", events=_ExplodingEvents())
    good = parse_input(RawInput(json.dumps(track(anonymousId="good"))), now_ms=NOW_MS)
    bad = parse_input(RawInput(json.dumps(track(anonymousId="bad", event="Boom"))), now_ms=NOW_MS)
    p = batch_pipeline()
    mapped = p | beam.Create([good, bad]) | MapToWoopra(settings_)
    from apache_beam.testing.util import assert_that, equal_to
    assert_that(mapped.requests | "Visitors" >> beam.Map(lambda r: r.event["anonymousId"]), equal_to(["good"]),
                label="sent")
    assert_that(mapped.dead_letters | "Errors" >> beam.Map(lambda d: (d.reason, d.error, d.event["anonymousId"])),
                equal_to([("invalid_event", "MapToWoopra failed on this event: RuntimeError: boom", "bad")]),
                label="dead")
    result = p.run()
    result.wait_until_finish()
    assert counters_from_result(result)["invalid"] == 1


# A few examples, each a whole job; shrinking a failure would rerun the job hundreds of times.
@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(events.map(lambda e: as_text(e, False)), events.map(lambda e: as_text(e, True)),
                          st.binary(max_size=60), any_text), min_size=10, max_size=30))
def test_the_whole_graph_accounts_for_every_input(tmp_path_factory, inputs):
    """The job's own graph over a file of hostile lines: it finishes, and the counts add up."""
    lines = [line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
             for line in inputs if line is not None]
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    lines = [line for line in lines if line.strip()]
    summary, records, requests = run_graph(tmp_path_factory.mktemp("hostile"), lines)
    assert summary["read"] == len(lines)
    assert summary["balanced"], {k: summary[k] for k in (*OUTCOME_KEYS, "would_send", "read")}
    assert len(records) == summary["invalid"] + summary["too_large"]
    assert all(r["event"] is not None or r["raw"] is not None for r in records)
    assert len(requests) == summary["would_send"]


@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(events.map(lambda e: as_text(e, False)), st.integers(1, 3)), min_size=5, max_size=15),
       st.randoms(use_true_random=False), st.integers(0, 2 * 10**12))
def test_copies_and_a_slice_change_nothing_but_the_counts(tmp_path_factory, lines_and_copies, rng, start_ms):
    """The same lines once, or each repeated and shuffled: the job sends the same requests, and
    every copy is one more ``duplicate`` or is counted as its first was; a slice only moves events
    to ``out_of_range``."""
    once = [line.encode("utf-8", "surrogatepass") for line, _ in lines_and_copies if line is not None]
    once = [line for line in dict.fromkeys(line.replace(b"\n", b" ").replace(b"\r", b" ") for line in once)
            if line.strip()]
    repeated = [line for line, (_, copies) in zip(once, lines_and_copies, strict=False) for _ in range(copies)]
    rng.shuffle(repeated)
    time_range = TimeRange(start_ms=start_ms)
    summary_once, _, sent_once = run_graph(tmp_path_factory.mktemp("once"), once, time_range)
    summary_repeated, _, sent_repeated = run_graph(tmp_path_factory.mktemp("repeated"), repeated, time_range)
    assert summary_once["balanced"] and summary_repeated["balanced"]
    assert sorted(map(without_read_time, sent_once)) == sorted(map(without_read_time, sent_repeated))
    assert summary_repeated["read"] == len(repeated)
    assert summary_repeated["out_of_range"] == summary_once["out_of_range"]
    assert summary_repeated["duplicate"] - summary_once["duplicate"] <= len(repeated) - len(once)


def without_read_time(request_line: str) -> str:
    """A request without its ``timestamp``: an event without one is stamped with the run's read time."""
    request = json.loads(request_line)
    request["params"].pop("timestamp", None)
    return json.dumps(request, sort_keys=True)


def run_graph(folder: Path, lines: list[bytes], time_range: TimeRange | None = None
              ) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """The job's graph (a dry run) over a file of ``lines``: its summary, dead letters and requests."""
    (folder / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    job = JobSettings(
        source_kind="files", source=str(folder / "in.jsonl"), streaming=False, woopra=SETTINGS,
        consent=POLICY, delivery=DeliverySettings(), identity_ttl_days=30, dead_letter=str(folder / "dead") + "/",
        dry_run=str(folder / "requests") + "/", summary=None, time_range=time_range or TimeRange())
    result = build_pipeline(batch_pipeline(), job).run()
    result.wait_until_finish()
    summary = build_summary(counters_from_result(result), True, 1.0)
    # split("\n"), not splitlines(): a record's text may hold U+2028 or \x1c, which JSON keeps as is.
    records = [json.loads(line) for path in (folder / "dead").glob("*.jsonl")
               for line in path.read_text(encoding="utf-8").split("\n") if line]
    requests = [line for path in (folder / "requests").glob("*.jsonl")
                for line in path.read_text(encoding="utf-8").split("\n") if line]
    return summary, records, requests
