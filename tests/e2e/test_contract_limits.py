"""Limits of the contract, end to end through ``python -m pipeline`` (README, "Mapping, precisely"):
a request URL never exceeds 8 KiB (8192 bytes) -- the longest ce_*/cv_* values are cut, never below
64 characters, and an event that still does not fit is a ``too_large`` dead letter -- and an event
dated in the future is sent with the time it was sent, not its own."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from tests.conftest import SAMPLES
from tests.e2e.test_end_to_end import read_jsonl, run_pipeline

URL_LIMIT = 8192  # 8 KiB, the contract's bound on a whole request URL
CONSENT = {"consent": {"analytics": True}, "userAgent": "LimitsTest/1.0"}
TIMESTAMP = "2026-03-02T10:00:00.000Z"
TIMESTAMP_MS = "1772445600000"

# One ASCII property far over the bound: cut to fit.
LONG_TEXT = "".join(f"{i:05d} lorem ipsum " for i in range(1500))  # 21,000 characters
ASCII_EVENT = {
    "type": "track", "event": "Order Completed", "messageId": "limits-ascii", "anonymousId": "limits-visitor-1",
    "userId": "limits-user-1", "timestamp": TIMESTAMP,
    "properties": {"description": LONG_TEXT, "order_id": "ORD-LIMITS", "revenue": 10},
    "context": CONSENT | {"ip": "192.0.2.201", "traits": {"email": "limits.one@example.com"}},
    "vendor_ids": {"woopra_cookie": "LIMITSCOOKIE1"},
}
# Emoji are 4 UTF-8 bytes, 12 characters once percent-encoded: the bound counts encoded characters.
EMOJI_TEXT = "\U0001f600" * 3000
EMOJI_EVENT = {
    "type": "track", "event": "Product Viewed", "messageId": "limits-emoji", "anonymousId": "limits-visitor-2",
    "timestamp": TIMESTAMP, "properties": {"review": EMOJI_TEXT, "product_id": "SKU-EMOJI"},
    "context": CONSENT | {"ip": "192.0.2.202"}, "vendor_ids": {"woopra_cookie": "LIMITSCOOKIE2"},
}
# 150 values of exactly 64 characters: none may be cut (64 is the floor), and together they are
# ~11 KB of query: too large.
SIXTY_FOUR = {f"p{i:03d}": f"{i:03d}" + "x" * 61 for i in range(150)}
TOO_LARGE_EVENT = {
    "type": "track", "event": "Huge Event", "messageId": "limits-too-large", "anonymousId": "limits-visitor-3",
    "timestamp": TIMESTAMP, "properties": SIXTY_FOUR,
    "context": CONSENT | {"ip": "192.0.2.203"}, "vendor_ids": {"woopra_cookie": "LIMITSCOOKIE3"},
}


def write_events(path: Path, *events: dict) -> Path:
    path.write_text("".join(json.dumps(event, ensure_ascii=False) + "\n" for event in events), encoding="utf-8")
    return path


def full_url(record: dict) -> str:
    """The URL as the HTTP library sends it: ``url?query``, parameters percent-encoded."""
    return f"{record['url']}?{urlencode(record['params'])}"


def utc_iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_urls_are_cut_to_8192_bytes_and_what_cannot_be_cut_is_a_too_large_dead_letter(tmp_path):
    endpoint = "http://127.0.0.1:9/track"
    events = write_events(tmp_path / "events.jsonl", ASCII_EVENT, EMOJI_EVENT, TOO_LARGE_EVENT)
    before = utc_iso_now()
    done = run_pipeline("--input", str(events), "--config", str(SAMPLES / "mapping.yaml"),
                        "--woopra_endpoint", endpoint, "--dry_run", str(tmp_path / "dry") + "/",
                        "--dead_letter", str(tmp_path / "dead") + "/", "--summary", str(tmp_path / "summary.json"))
    after = utc_iso_now()
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["read"], summary["would_send"], summary["too_large"]) == (3, 2, 1)

    written = {r["params"]["cookie"]: r for r in read_jsonl(tmp_path / "dry")}
    assert set(written) == {"LIMITSCOOKIE1", "LIMITSCOOKIE2"}

    ascii_request = written["LIMITSCOOKIE1"]
    url = full_url(ascii_request)
    assert len(url) <= URL_LIMIT
    assert len(url) > URL_LIMIT - 64, len(url)  # cut to what fits, not far below it
    params = ascii_request["params"]
    assert LONG_TEXT.startswith(params["ce_description"]) and len(params["ce_description"]) < len(LONG_TEXT)
    # Only the long value was cut; what identifies the visitor and the other values are whole.
    assert (params["cv_email"], params["cv_id"], params["ce_order_id"], params["ce_amount"], params["event"]) == (
        "limits.one@example.com", "limits-user-1", "ORD-LIMITS", "10", "purchase")

    emoji_request = written["LIMITSCOOKIE2"]
    url = full_url(emoji_request)
    assert len(url) <= URL_LIMIT and len(url.encode("utf-8")) <= URL_LIMIT
    assert len(url) > URL_LIMIT - 64, len(url)
    review = emoji_request["params"]["ce_review"]
    assert EMOJI_TEXT.startswith(review) and 64 <= len(review) < len(EMOJI_TEXT)

    # The too-large event's dead letter, every key of it.
    (dead,) = read_jsonl(tmp_path / "dead")
    unsent = {"project": "mywebsite.com", "response": "json", "timeout": "1800000", "ce_app": "datafly-signal",
              "event": "Huge Event", "cookie": "LIMITSCOOKIE3", "ip": "192.0.2.203", "timestamp": TIMESTAMP_MS}
    unsent |= {f"ce_{key}": value for key, value in SIXTY_FOUR.items()}
    unsent_length = len(f"{endpoint}/ce/?{urlencode(unsent)}")
    assert unsent_length > URL_LIMIT
    assert before <= dead["failed_at"] <= after, (before, dead["failed_at"], after)
    assert dead == {
        "reason": "too_large",
        "error": f"request URL is {unsent_length} bytes, over {URL_LIMIT}",
        "status": None,
        "response_body": None,
        "attempts": 0,
        "failed_at": dead["failed_at"],
        "request": None,
        "event": TOO_LARGE_EVENT,
        "raw": None,
    }


def test_an_event_dated_next_year_is_sent_with_the_send_time(tmp_path, standin):
    next_year = datetime.now(UTC).year + 1
    future = {
        "type": "track", "event": "Order Completed", "messageId": "limits-future", "anonymousId": "limits-visitor-4",
        "timestamp": f"{next_year}-06-01T12:00:00.000Z", "properties": {"order_id": "ORD-FUTURE"},
        "context": CONSENT | {"ip": "192.0.2.204"}, "vendor_ids": {"woopra_cookie": "LIMITSCOOKIE4"},
    }
    events = write_events(tmp_path / "events.jsonl", future, ASCII_EVENT, EMOJI_EVENT)
    before_ms = int(time.time() * 1000)
    done = run_pipeline("--input", str(events), "--config", str(SAMPLES / "mapping.yaml"),
                        "--woopra_endpoint", standin.url, "--dead_letter", str(tmp_path / "dead") + "/")
    after_ms = int(time.time() * 1000)
    assert done.returncode == 0, done.stderr[-3000:]
    received = {r["params"]["cookie"]: r for r in standin.requests}
    assert set(received) == {"LIMITSCOOKIE1", "LIMITSCOOKIE2", "LIMITSCOOKIE4"}

    sent = received["LIMITSCOOKIE4"]
    assert sent["params"]["ce_order_id"] == "ORD-FUTURE"
    assert before_ms <= int(sent["params"]["timestamp"]) <= after_ms, (before_ms, sent["params"]["timestamp"], after_ms)
    assert received["LIMITSCOOKIE1"]["params"]["timestamp"] == TIMESTAMP_MS  # a past time is sent as it is

    # On the wire, too: the request line's URL (origin, path and query as received) within 8192 bytes.
    origin = standin.url.removesuffix("/track")
    for cookie in ("LIMITSCOOKIE1", "LIMITSCOOKIE2"):
        wire_url = f"{origin}{received[cookie]['path']}?{received[cookie]['query']}"
        assert URL_LIMIT - 64 < len(wire_url) <= URL_LIMIT, (cookie, len(wire_url))
