"""TestStream tests of the streaming behaviour: identity expiry timer, windowed file outputs."""

from __future__ import annotations

import json
import time

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Timestamp

from tests.conftest import streaming_pipeline
from transforms.enrich_identity import EnrichIdentity
from transforms.rules.dead_letters import DeadLetter
from transforms.rules.events import validate_event
from transforms.rules.identity import MS_PER_DAY
from transforms.write_dead_letters import WriteDeadLetters

NOW_MS = int(time.time() * 1000)


def _at(ms: int) -> str:
    return Timestamp(micros=ms * 1000).to_rfc3339()


def _identify(at_ms: int):
    return validate_event({"type": "identify", "anonymousId": "v-1", "timestamp": _at(at_ms),
                           "traits": {"email": "v@example.com"}})


def _track(at_ms: int):
    return validate_event({"type": "track", "event": "Signed Up", "anonymousId": "v-1", "timestamp": _at(at_ms)})


def _stream(*steps):
    stream = TestStream()
    for step in steps:
        step(stream)
    return stream.advance_watermark_to_infinity()


def _add(event):
    return lambda stream: stream.add_elements([beam.window.TimestampedValue(event, event.timestamp_ms / 1000)])


def _watermark(ms: int):
    return lambda stream: stream.advance_watermark_to(Timestamp(micros=ms * 1000))


def _emails(p, stream, ttl_days):
    return ((p | stream | EnrichIdentity(ttl_days=ttl_days)).events
            | beam.Map(lambda e: (e.type, e.timestamp_ms - NOW_MS, e.traits.get("email"))))


def test_identity_survives_while_the_visitor_is_active():
    hour = 3_600_000
    stream = _stream(_add(_identify(NOW_MS)), _watermark(NOW_MS + 1),
                     _add(_track(NOW_MS + hour)), _watermark(NOW_MS + hour + 1))
    with streaming_pipeline() as p:
        assert_that(_emails(p, stream, ttl_days=1), equal_to([
            ("identify", 0, "v@example.com"), ("track", hour, "v@example.com")]))


def test_expiry_timer_clears_identity_after_the_ttl_without_activity():
    # After the identify, the watermark passes its expiry (1 day): the timer clears the state.
    # A late event of the visitor, only an hour after the identify, then finds nothing: without
    # the timer the remembered email would still apply (the hour is within the TTL).
    hour = 3_600_000
    stream = _stream(_add(_identify(NOW_MS)), _watermark(NOW_MS + 1),
                     _watermark(NOW_MS + MS_PER_DAY + hour),
                     _add(_track(NOW_MS + hour)), _watermark(NOW_MS + MS_PER_DAY + 2 * hour))
    with streaming_pipeline() as p:
        assert_that(_emails(p, stream, ttl_days=1), equal_to([
            ("identify", 0, "v@example.com"), ("track", hour, None)]))


def test_an_event_from_the_far_future_does_not_hold_back_its_visitors_other_events():
    # A track, then an event dated year 9000 (a wrong clock), then the watermark passes now. The
    # track must be released then: an identify of the same visitor that arrives afterwards (dated
    # before the track) cannot enrich it any more. Held back until the year 9000, the track would
    # still be waiting when the identify came, and would be released after it, with its email.
    hour = 3_600_000
    year_9000_ms = 221_845_392_000_000
    stream = _stream(_add(_track(NOW_MS - hour)), _add(_track(year_9000_ms)),
                     _watermark(int(time.time() * 1000) + hour),
                     _add(_identify(NOW_MS - 2 * hour)), _watermark(int(time.time() * 1000) + 2 * hour))
    with streaming_pipeline() as p:
        emails = _emails(p, stream, ttl_days=1) | beam.Filter(lambda row: row[1] < 0)
        assert_that(emails, equal_to([("track", -hour, None), ("identify", -2 * hour, "v@example.com")]))


def test_streaming_dead_letters_are_written_to_windowed_files(tmp_path):
    records = [DeadLetter(reason="invalid_json", error="bad", event=None, raw=f"line {i}") for i in range(3)]
    stream = TestStream().add_elements(records[:2]).add_elements(records[2:]).advance_watermark_to_infinity()
    with streaming_pipeline() as p:
        _ = p | stream | WriteDeadLetters(str(tmp_path) + "/", window_seconds=60)
    files = sorted(tmp_path.glob("dead_letters-*.jsonl"))
    assert files, list(tmp_path.iterdir())
    # The name carries the window: dead_letters-<start>-<end>-<pane>-<shard>-of-<n>.jsonl
    assert all(len(f.name.split("-")) > 4 for f in files)
    written = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted(r["raw"] for r in written) == ["line 0", "line 1", "line 2"]
    assert {r["reason"] for r in written} == {"invalid_json"}
