"""Pipeline tests of each PTransform (TestPipeline + assert_that) on the offline batch runner."""

from __future__ import annotations

import gzip
import json
import random

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import batch_pipeline
from transforms.consent_filter import ConsentFilter
from transforms.counters import NAMESPACE
from transforms.deliver import DeliverToWoopra
from transforms.delivery.retry import RetryPolicy
from transforms.delivery.settings import DeliverySettings
from transforms.enrich_identity import EnrichIdentity
from transforms.map_to_woopra import MapToWoopra
from transforms.parse_events import ParseEvents
from transforms.read_events import ReadEvents
from transforms.rules.consent import ConsentPolicy
from transforms.rules.events import RawInput, validate_event
from transforms.rules.woopra_mapping import WoopraSettings
from woopra_standin import Rule

GRANTED = {"consent": {"analytics": True}}


def counters(result) -> dict[str, int]:
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    return {c.key.metric.name: c.committed for c in query["counters"]}


def event(**fields):
    base = {"type": "track", "event": "Order Completed", "anonymousId": "a-1",
            "timestamp": "2026-03-02T09:00:00Z", "context": dict(GRANTED)}
    base.update(fields)
    return base


def test_read_events_reads_jsonl_gzip_and_parquet_by_glob(tmp_path):
    lines = [json.dumps(event(anonymousId=f"a-{i}")) for i in range(3)]
    (tmp_path / "one.jsonl").write_text("\n".join(lines[:2]) + "\n\n")
    with gzip.open(tmp_path / "two.ndjson.gz", "wt") as handle:
        handle.write(lines[2] + "\n")
    table = pa.table({
        "type": ["page", "track"],
        "event": [None, "Signed Up"],
        "anonymousId": ["p-1", "p-2"],
        "timestamp": ["2026-03-02T09:00:00Z", "2026-03-02T09:01:00Z"],
        # One nested column as a struct, one as a JSON string: both are accepted.
        "context": [{"ip": "192.0.2.1", "consent": {"analytics": True}},
                    {"ip": "192.0.2.2", "consent": {"analytics": True}}],
        "properties": ['{"plan": "pro"}', '{"plan": "free"}'],
    })
    pq.write_table(table, tmp_path / "three.parquet")

    with batch_pipeline() as p:
        parsed = p | ReadEvents(str(tmp_path / "*")) | ParseEvents()
        visitors = parsed.events | beam.Map(lambda e: (e.visitor, e.type, e.original.get("properties")))
        assert_that(visitors, equal_to([
            ("a-0", "track", None), ("a-1", "track", None), ("a-2", "track", None),
            ("p-1", "page", {"plan": "pro"}), ("p-2", "track", {"plan": "free"}),
        ]))
        assert_that(parsed.dead_letters, equal_to([]), label="NoDeadLetters")


def test_parse_events_sends_malformed_input_to_dead_letters_and_counts():
    raws = [
        RawInput(json.dumps(event())),
        RawInput('{"type": "track", '),
        RawInput(json.dumps({"type": "track", "anonymousId": "x"})),
        RawInput(json.dumps({"type": "group", "anonymousId": "x"})),
        RawInput(json.dumps(event(timestamp="not a time"))),
    ]
    p = batch_pipeline()
    parsed = p | beam.Create(raws) | ParseEvents()
    assert_that(parsed.events | beam.Map(lambda e: e.timestamp_ms), equal_to([1772442000000]))
    assert_that(
        parsed.dead_letters | beam.Map(lambda d: (d.reason, d.raw is not None)),
        equal_to([("invalid_json", True), ("invalid_event", False), ("invalid_event", False)]),
        label="DeadLetterReasons")
    result = p.run()
    result.wait_until_finish()
    assert counters(result) == {"read": 5, "invalid": 3, "unsupported": 1}


def test_parse_events_uses_event_time_as_element_timestamp():
    with batch_pipeline() as p:
        stamps = (p | beam.Create([RawInput(json.dumps(event()))]) | ParseEvents()).events \
            | beam.ParDo(_Timestamp())
        assert_that(stamps, equal_to([1772442000.0]))


class _Timestamp(beam.DoFn):
    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        yield float(timestamp)


def test_consent_filter_keeps_granted_and_counts_denied_and_missing():
    events = [
        validate_event(event(anonymousId="ok", context={"consent": {"analytics": True}})),
        validate_event(event(anonymousId="no", context={"consent": {"Analytics": False}})),
        validate_event(event(anonymousId="none", context={})),
    ]
    p = batch_pipeline()
    kept = (p | beam.Create(events) | ConsentFilter(ConsentPolicy())).events | beam.Map(lambda e: e.visitor)
    assert_that(kept, equal_to(["ok"]))
    result = p.run()
    result.wait_until_finish()
    assert counters(result) == {"consent_denied": 1, "consent_missing": 1}


def _visitor_history():
    """An identify between two tracks of one visitor, plus another visitor's track."""
    return [
        validate_event(event(event="Product Viewed", timestamp="2026-03-02T09:00:00Z",
                             vendor_ids={"woopra_cookie": "COOKIE1"})),
        validate_event({"type": "identify", "anonymousId": "a-1", "userId": "u-1",
                        "timestamp": "2026-03-02T09:05:00Z", "traits": {"email": "j@example.com", "name": "J"}}),
        validate_event(event(timestamp="2026-03-02T09:10:00Z")),
        validate_event(event(anonymousId="b-2", timestamp="2026-03-02T09:07:00Z")),
    ]


def _identity_view(e):
    return (e.visitor, e.type, e.name, e.traits.get("email"), e.user_id, e.cookie)


def test_identity_is_carried_forward_in_event_time_whatever_the_input_order():
    expected = [
        ("a-1", "track", "Product Viewed", None, None, "COOKIE1"),
        ("a-1", "identify", None, "j@example.com", "u-1", "COOKIE1"),
        ("a-1", "track", "Order Completed", "j@example.com", "u-1", "COOKIE1"),
        ("b-2", "track", "Order Completed", None, None, _fallback("b-2")),
    ]
    for seed in range(4):
        history = _visitor_history()
        random.Random(seed).shuffle(history)
        with batch_pipeline() as p:
            enriched = (p | beam.Create(history) | EnrichIdentity()).events | beam.Map(_identity_view)
            assert_that(enriched, equal_to(expected))


def _fallback(anonymous_id: str) -> str:
    from transforms.rules.identity import fallback_cookie

    return fallback_cookie(anonymous_id)


def test_identity_is_forgotten_after_the_ttl_of_event_time():
    history = [
        validate_event({"type": "identify", "anonymousId": "a-1", "timestamp": "2026-01-01T00:00:00Z",
                        "traits": {"email": "j@example.com"}}),
        validate_event(event(timestamp="2026-01-05T00:00:00Z")),  # 4 days later: remembered
        validate_event(event(timestamp="2026-01-20T00:00:00Z")),  # 15 idle days later: forgotten
    ]
    with batch_pipeline() as p:
        emails = ((p | beam.Create(history) | EnrichIdentity(ttl_days=10)).events
                  | beam.Map(lambda e: (e.timestamp_ms, e.traits.get("email"))))
        assert_that(emails, equal_to([
            (1767225600000, "j@example.com"), (1767571200000, "j@example.com"), (1768867200000, None)]))


def test_map_to_woopra_builds_requests_and_dead_letters_too_large():
    settings = WoopraSettings(project="mywebsite.com", unmapped_events="drop")
    huge_key_count = {f"k{i}": "x" * 50 for i in range(400)}  # many short values: cannot be cut
    events = [
        validate_event(event(properties={"order_id": "ORD-1", "revenue": 10})),
        validate_event(event(event="Something Else")),
        validate_event(event(properties=huge_key_count)),
    ]
    p = batch_pipeline()
    mapped = p | beam.Create(events) | MapToWoopra(settings)
    assert_that(mapped.requests | beam.Map(lambda r: (r.url, dict(r.params)["event"], dict(r.params)["ce_amount"])),
                equal_to([("https://www.woopra.com/track/ce/", "purchase", "10")]))
    assert_that(mapped.dead_letters | beam.Map(lambda d: d.reason), equal_to(["too_large"]), label="TooLarge")
    result = p.run()
    result.wait_until_finish()
    assert counters(result) == {"dropped_unmapped": 1, "too_large": 1}


@pytest.mark.parametrize("spread_over_workers", [False, True], ids=["one-process", "checkpointed"])
def test_deliver_sends_every_request_and_dead_letters_rejections(standin, spread_over_workers):
    # checkpointed: as on Dataflow, the requests and the outcomes go through a shuffle (encoded).
    standin.set_rules([
        Rule(match={"ce_order_id": "bad"}, statuses=[400], body='{"error":"bad"}'),
        Rule(match={"ce_order_id": "flaky"}, statuses=[503, 200]),
        Rule(match={"ce_order_id": "queued"}, statuses=[202]),
    ])
    settings = WoopraSettings(project="p.example", endpoint=standin.url)
    ids = ["ok-1", "ok-2", "bad", "flaky", "queued"]
    events = [validate_event(event(anonymousId=i, properties={"order_id": i})) for i in ids]
    delivery = DeliverySettings(rate_limit=1000, max_in_flight=4, spread_over_workers=spread_over_workers,
                                retry=RetryPolicy(max_attempts=3, backoff_initial=0.01))
    p = batch_pipeline()
    delivered = ((p | beam.Create(events) | EnrichIdentity()).events | MapToWoopra(settings)).requests \
        | DeliverToWoopra(delivery)
    assert_that(delivered.delivered | beam.Map(lambda o: (dict(o.request.params)["ce_order_id"], o.status, o.attempts)),
                equal_to([("ok-1", 200, 1), ("ok-2", 200, 1), ("flaky", 200, 2), ("queued", 202, 1)]))
    dead_letter_view = beam.Map(lambda d: (d.reason, d.status, d.response_body, d.event["anonymousId"]))
    assert_that(delivered.dead_letters | dead_letter_view,
                equal_to([("rejected", 400, '{"error":"bad"}', "bad")]), label="Rejected")
    result = p.run()
    result.wait_until_finish()
    assert counters(result) == {"delivered_200": 3, "delivered_202": 1, "rejected": 1, "retried_requests": 1,
                                f"failure_cause/rejected: HTTP 400 from 127.0.0.1:{standin.port}": 1}
    assert len(standin.requests) == 6
