"""Streaming end to end: ``python -m pipeline --input_subscription ... --streaming`` against a
real Pub/Sub emulator and the Woopra stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import ROOT, SAMPLES, subprocess_env
from tests.e2e.test_end_to_end import SAMPLE_DELIVERABLE, SEED_PURCHASE, read_jsonl, run_pipeline
from tests.support.streaming_run import stop_job, wait_until

pytestmark = pytest.mark.pubsub
PROJECT = "woopra-test"




@pytest.fixture
def pubsub(pubsub_emulator):
    """Fresh input and dead-letter topics with subscriptions on the emulator."""
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    suffix = uuid.uuid4().hex[:8]
    names = {}
    for role in ("events", "dead"):
        topic = f"projects/{PROJECT}/topics/{role}-{suffix}"
        subscription = f"projects/{PROJECT}/subscriptions/{role}-{suffix}"
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic)
        names[role] = (topic, subscription)
    yield publisher, subscriber, names
    for topic, subscription in names.values():
        subscriber.delete_subscription(subscription=subscription)
        publisher.delete_topic(topic=topic)


def publish(publisher, topic: str, lines: list[str]) -> None:
    for future in [publisher.publish(topic, line.encode("utf-8"), origin="test") for line in lines]:
        future.result(timeout=30)


def pull_all(subscriber, subscription: str, expected: int, timeout: float = 60) -> list:
    """Pull until ``expected`` messages arrived (or the timeout), acking them."""
    messages: list = []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        response = subscriber.pull(subscription=subscription, max_messages=50, timeout=10)
        if response.received_messages:
            subscriber.acknowledge(subscription=subscription,
                                   ack_ids=[m.ack_id for m in response.received_messages])
            messages += [m.message for m in response.received_messages]
    return messages


def comparable(path: str, params: dict) -> tuple:
    return path, tuple(sorted(params.items()))


@pytest.mark.canary
def test_stream_from_pubsub_matches_the_batch_path(tmp_path, standin, pubsub, pubsub_emulator):
    publisher, subscriber, names = pubsub
    (events_topic, events_subscription), (dead_topic, dead_subscription) = names["events"], names["dead"]

    # What the batch path produces for the same events.
    batch = run_pipeline("--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
                         "--woopra_endpoint", standin.url, "--dry_run", str(tmp_path / "batch") + "/",
                         "--dead_letter", str(tmp_path / "batch-dead") + "/")
    assert batch.returncode == 0, batch.stderr
    expected = sorted(comparable(r["url"].removeprefix(standin.url[: -len("/track")]), r["params"])
                      for r in read_jsonl(tmp_path / "batch"))
    assert len(expected) == SAMPLE_DELIVERABLE

    sample_lines = (SAMPLES / "events.jsonl").read_text().splitlines()
    publish(publisher, events_topic, sample_lines)
    env = subprocess_env() | {"PUBSUB_EMULATOR_HOST": pubsub_emulator}
    started = time.monotonic()
    job = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--input_subscription", events_subscription, "--streaming",
         "--config", str(SAMPLES / "mapping.yaml"), "--woopra_endpoint", standin.url,
         "--dead_letter", dead_topic, "--progress_interval_seconds", "2", "--project", PROJECT,
         "--summary", str(tmp_path / "summary.json")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: len(standin.requests) >= SAMPLE_DELIVERABLE, timeout=90), \
            f"stand-in got {len(standin.requests)} requests"
        received = sorted(comparable(r["path"], r["params"]) for r in standin.requests)
        assert received == expected
        denied_cookies = {"DENIED00COOKIE"}
        assert not any(r["params"].get("cookie") in denied_cookies for r in standin.requests)

        dead = pull_all(subscriber, dead_subscription, expected=5)
        assert sorted(m.attributes["reason"] for m in dead) == ["invalid_event"] * 4 + ["invalid_json"]
        records = [json.loads(m.data) for m in dead]
        assert all(m.attributes["origin"] == "test" for m in dead)  # the input's attributes travel along
        bad_json = next(r for r in records if r["reason"] == "invalid_json")
        assert bad_json["raw"] == sample_lines[22] and bad_json["event"] is None
        no_type = next(r for r in records if r["error"] == "missing field 'type'")
        assert no_type["event"] == json.loads(sample_lines[23])

        # Identity across messages: an identify, delivered, then a track of the same visitor.
        visitor = f"stream-visitor-{uuid.uuid4().hex[:6]}"
        consent = {"consent": {"analytics": True}, "ip": "192.0.2.99", "userAgent": "StreamTest/1.0"}
        publish(publisher, events_topic, [json.dumps({
            "type": "identify", "anonymousId": visitor, "userId": "user-stream", "timestamp": "2026-05-01T10:00:00Z",
            "traits": {"email": "stream@example.com", "name": "Stream Visitor"}, "context": consent})])
        assert wait_until(lambda: any(r["params"].get("cv_email") == "stream@example.com"
                                      for r in standin.requests), timeout=60)
        publish(publisher, events_topic, [json.dumps({
            "type": "track", "event": "Order Completed", "anonymousId": visitor, "timestamp": "2026-05-01T10:05:00Z",
            "properties": {"order_id": "ORD-STREAM", "revenue": 5}, "context": consent})])
        assert wait_until(lambda: any(r["params"].get("ce_order_id") == "ORD-STREAM"
                                      for r in standin.requests), timeout=60)
        track = next(r for r in standin.requests if r["params"].get("ce_order_id") == "ORD-STREAM")
        assert track["params"]["cv_email"] == "stream@example.com"
        assert track["params"]["cv_name"] == "Stream Visitor"
        assert track["params"]["cv_id"] == "user-stream"
        assert track["params"]["event"] == "purchase" and track["headers"]["user-agent"] == "StreamTest/1.0"
        purchase = next(r for r in standin.requests
                        if r["params"].get("ce_order_id") == "ORD-001" and r["params"]["event"] == "purchase")
        assert {k: purchase["params"][k] for k in SEED_PURCHASE} == SEED_PURCHASE
        elapsed = time.monotonic() - started
    finally:
        stdout, stderr = stop_job(job)
    assert job.returncode == 0, stderr
    assert "progress: read=" in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["read"] == len(sample_lines) + 2
    assert summary["delivered_200"] == SAMPLE_DELIVERABLE + 2 and summary["invalid"] == 5
    assert summary["balanced"] is True, stdout
    print(f"streaming e2e: {summary['read']} events through Pub/Sub in {elapsed:.1f} s")
