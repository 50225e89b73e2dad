"""Unit tests for transforms/delivery/sender.py against a local stand-in (docs/behaviour.md#delivery).

Everything talks to 127.0.0.1 only; every loop and wait is bounded. Backoff sleeps are recorded by
a fake ``sleep`` instead of being slept.
"""

from __future__ import annotations

import copy
import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest

from tests.support.scripted_server import ScriptedServer
from tests.support.self_signed import write_self_signed
from tests.support.sending import send_all
from transforms.delivery.rate_limit import TokenBucket
from transforms.delivery.retry import RetryPolicy
from transforms.delivery.sender import FALLBACK_USER_AGENT, WoopraSender, is_certificate_failure
from transforms.rules.events import validate_event
from transforms.rules.identity import VisitorIdentity, enrich
from transforms.rules.woopra_mapping import WoopraRequest, WoopraSettings, build_request
from woopra_standin import Rule, StandIn
from woopra_standin.server import tls_context

UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Visitor"
FAST = RetryPolicy(max_attempts=4, max_retry_seconds=600, backoff_initial=0.001, backoff_max=0.01)


class SleepRecorder:
    def __init__(self, on_sleep=None):
        self.delays: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(len(self.delays))


@pytest.fixture
def woopra():
    server = StandIn(host="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_sender():
    senders: list[WoopraSender] = []

    def make(policy=FAST, request_timeout=5.0, max_in_flight=4, limiter=None, sleep=None):
        sender = WoopraSender(policy, request_timeout=request_timeout, max_in_flight=max_in_flight,
                              limiter=limiter, sleep=sleep if sleep is not None else SleepRecorder())
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.close()


def ce_request(base_url, event="purchase", user_agent=UA, **params):
    all_params = {"project": "mywebsite.com", "response": "json", "event": event, "cookie": "AH47DHS5SF182DIQZJD"}
    all_params.update(params)
    return WoopraRequest(url=f"{base_url}/ce/", params=tuple(all_params.items()), user_agent=user_agent,
                         event={"type": "track", "event": event, "anonymousId": "a"})


# ----- statuses ---------------------------------------------------------------------------

@pytest.mark.parametrize("status, result", [(200, "delivered_200"), (202, "delivered_202"), (204, "delivered_200")])
def test_2xx_is_delivered_after_one_attempt(woopra, make_sender, status, result):
    woopra.set_rules([Rule(match={"event": "e"}, statuses=[status])])
    sleep = SleepRecorder()
    outcome = make_sender(sleep=sleep).send(ce_request(woopra.url, event="e"))
    assert outcome.result == result
    assert outcome.delivered
    assert (outcome.status, outcome.attempts) == (status, 1)
    assert sleep.delays == []
    assert len(woopra.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_4xx_is_rejected_after_one_attempt(woopra, make_sender, status):
    woopra.set_rules([Rule(match={"event": "bad"}, statuses=[status, 200], body='{"error":"unknown project"}')])
    sleep = SleepRecorder()
    outcome = make_sender(sleep=sleep).send(ce_request(woopra.url, event="bad"))
    assert outcome.result == "rejected"
    assert not outcome.delivered
    assert (outcome.status, outcome.attempts) == (status, 1)
    assert outcome.error == f"HTTP {status}"
    assert outcome.response_body == '{"error":"unknown project"}'
    assert sleep.delays == []
    assert len(woopra.requests) == 1


def test_rejected_outcome_becomes_a_spec_dead_letter(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "bad"}, statuses=[400])])
    request = ce_request(woopra.url, event="bad")
    record = make_sender().send(request).dead_letter().to_dict()
    assert record["reason"] == "rejected"
    assert record["status"] == 400
    assert record["attempts"] == 1
    assert record["error"] == "HTTP 400"
    assert record["event"] == request.event
    assert record["request"]["method"] == "GET"
    assert record["request"]["url"] == f"{woopra.url}/ce/"
    assert record["request"]["params"]["event"] == "bad"
    assert record["request"]["headers"] == {"User-Agent": UA}
    assert record["failed_at"].endswith("Z")


@pytest.mark.parametrize("first", [503, 500, 502, 408, 429])
def test_retryable_status_then_200_is_delivered_with_two_attempts(woopra, make_sender, first):
    woopra.set_rules([Rule(match={"event": "flaky"}, statuses=[first, 200])])
    sleep = SleepRecorder()
    outcome = make_sender(sleep=sleep).send(ce_request(woopra.url, event="flaky"))
    assert outcome.result == "delivered_200"
    assert (outcome.status, outcome.attempts) == (200, 2)
    assert len(sleep.delays) == 1
    assert 0.0005 <= sleep.delays[0] <= 0.001
    assert [r["status"] for r in woopra.requests] == [first, 200]


def test_429_retry_after_seconds_is_honoured(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "busy"}, statuses=[429, 429, 200], retry_after="7")])
    sleep = SleepRecorder()
    outcome = make_sender(sleep=sleep).send(ce_request(woopra.url, event="busy"))
    assert outcome.result == "delivered_200"
    assert outcome.attempts == 3
    assert sleep.delays == [7.0, 7.0]


def test_503_retry_after_http_date_is_honoured(woopra, make_sender):
    when = datetime.now(UTC) + timedelta(seconds=30)
    woopra.set_rules([Rule(match={"event": "busy"}, statuses=[503, 200], retry_after=format_datetime(when, True))])
    sleep = SleepRecorder()
    outcome = make_sender(sleep=sleep).send(ce_request(woopra.url, event="busy"))
    assert outcome.result == "delivered_200"
    assert len(sleep.delays) == 1
    assert 25.0 <= sleep.delays[0] <= 31.0


def test_retry_after_beyond_the_retry_budget_exhausts_retries(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "busy"}, statuses=[429, 200], retry_after="3600")])
    sleep = SleepRecorder()
    policy = RetryPolicy(max_attempts=5, max_retry_seconds=600, backoff_initial=0.001)
    outcome = make_sender(policy=policy, sleep=sleep).send(ce_request(woopra.url, event="busy"))
    assert outcome.result == "retries_exhausted"
    assert (outcome.status, outcome.attempts) == (429, 1)
    assert sleep.delays == []
    assert outcome.dead_letter().to_dict()["reason"] == "retries_exhausted"


@pytest.mark.parametrize("max_attempts", [1, 3, 5])
def test_always_500_exhausts_retries_after_max_attempts(woopra, make_sender, max_attempts):
    woopra.set_rules([Rule(match={"event": "down"}, statuses=[500], body="internal error")])
    sleep = SleepRecorder()
    policy = RetryPolicy(max_attempts=max_attempts, backoff_initial=0.001, backoff_max=0.004)
    outcome = make_sender(policy=policy, sleep=sleep).send(ce_request(woopra.url, event="down"))
    assert outcome.result == "retries_exhausted"
    assert (outcome.status, outcome.attempts) == (500, max_attempts)
    assert outcome.error == "HTTP 500"
    assert outcome.response_body == "internal error"
    assert len(woopra.requests) == max_attempts
    assert len(sleep.delays) == max_attempts - 1
    for attempt, delay in enumerate(sleep.delays, start=1):
        ceiling = min(0.004, 0.001 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_retries_are_really_waited_with_the_default_sleep(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "flaky"}, statuses=[503, 503, 200])])
    policy = RetryPolicy(max_attempts=3, backoff_initial=0.05, backoff_max=0.05)
    sender = make_sender(policy=policy, sleep=time.sleep)
    started = time.monotonic()
    outcome = sender.send(ce_request(woopra.url, event="flaky"))
    assert outcome.result == "delivered_200"
    assert time.monotonic() - started >= 2 * 0.025  # lower bound only


# ----- connection failures ----------------------------------------------------------------

def test_dropped_connection_is_retried(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "drop"}, drop_attempts=2, statuses=[200])])
    sleep = SleepRecorder()
    outcome = make_sender(sleep=sleep).send(ce_request(woopra.url, event="drop"))
    assert outcome.result == "delivered_200"
    assert outcome.attempts == 3
    assert len(sleep.delays) == 2
    assert [r["status"] for r in woopra.requests] == [None, None, 200]


def test_connection_always_dropped_exhausts_retries_without_status(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "drop"}, drop_attempts=100, statuses=[200])])
    policy = RetryPolicy(max_attempts=3, backoff_initial=0.001)
    outcome = make_sender(policy=policy).send(ce_request(woopra.url, event="drop"))
    assert outcome.result == "retries_exhausted"
    assert outcome.status is None
    assert outcome.attempts == 3
    assert "Disconnected" in outcome.error or "Connection" in outcome.error


def test_connection_refused_is_retried_then_exhausted(make_sender):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on this port now
    sleep = SleepRecorder()
    policy = RetryPolicy(max_attempts=2, backoff_initial=0.001)
    outcome = make_sender(policy=policy, sleep=sleep).send(ce_request(f"http://127.0.0.1:{port}/track"))
    assert outcome.result == "retries_exhausted"
    assert (outcome.status, outcome.attempts) == (None, 2)
    assert len(sleep.delays) == 1


def test_unknown_host_is_retried_like_a_refused_connection(make_sender):
    # A 64-character label is refused by the resolver itself: nothing leaves the machine.
    sleep = SleepRecorder()
    policy = RetryPolicy(max_attempts=2, backoff_initial=0.001)
    outcome = make_sender(policy=policy, sleep=sleep).send(ce_request(f"http://{'a' * 64}.invalid/track"))
    assert outcome.result == "retries_exhausted"
    assert (outcome.status, outcome.attempts) == (None, 2)
    assert len(sleep.delays) == 1
    assert "resolve" in outcome.error


def test_untrusted_tls_certificate_is_rejected_at_once_not_retried(tmp_path, make_sender):
    cert, key = write_self_signed(tmp_path)
    sleep = SleepRecorder()
    with StandIn(port=0, ssl_context=tls_context(str(cert), str(key))) as server:
        assert server.url.startswith("https://127.0.0.1:")
        outcome = make_sender(policy=RetryPolicy(max_attempts=5, backoff_initial=0.001), sleep=sleep).send(
            ce_request(server.url))
        assert server.requests == []  # the handshake failed: no request was ever read
    assert (outcome.result, outcome.status, outcome.attempts) == ("rejected", None, 1)
    assert "certificate" in outcome.error.lower() and "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert sleep.delays == []  # no backoff: nothing was retried
    assert outcome.dead_letter().reason == "rejected"


def test_only_certificate_verification_failures_count_as_certificate_failures():
    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert is_certificate_failure(verify)
    wrapped = ConnectionError("handshake failed")
    wrapped.__cause__ = verify
    assert is_certificate_failure(wrapped)
    # A handshake that breaks for another reason may be the network: still retried.
    assert not is_certificate_failure(ssl.SSLError(1, "[SSL] record layer failure"))
    assert not is_certificate_failure(ConnectionRefusedError(111, "refused"))
    assert not is_certificate_failure(TimeoutError())


def test_request_timeout_is_retried(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "slow"}, statuses=[200], delay_ms=3000)])
    # The first backoff removes the delay, so the second attempt answers at once.
    sleep = SleepRecorder(on_sleep=lambda n: woopra.set_rules([]))
    outcome = make_sender(request_timeout=0.5, sleep=sleep).send(ce_request(woopra.url, event="slow"))
    assert outcome.result == "delivered_200"
    assert outcome.attempts == 2
    assert len(sleep.delays) == 1
    assert woopra.wait_for(2, timeout=5)


def test_request_timeout_every_time_exhausts_retries(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "slow"}, statuses=[200], delay_ms=2000)])
    policy = RetryPolicy(max_attempts=2, backoff_initial=0.001)
    started = time.monotonic()
    outcome = make_sender(policy=policy, request_timeout=0.2).send(ce_request(woopra.url, event="slow"))
    assert outcome.result == "retries_exhausted"
    assert (outcome.status, outcome.attempts) == (None, 2)
    assert "Timeout" in outcome.error
    assert time.monotonic() - started >= 2 * 0.2  # lower bound only


def test_connection_broken_mid_response_is_not_rejected(make_sender):
    answered: list[bytes] = []

    def cut_short_once(request: bytes) -> bytes:
        answered.append(request)
        if len(answered) == 1:
            return b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"succ'
        return b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 16\r\n\r\n{"success":true}'

    with ScriptedServer(cut_short_once, close_after_answer=True) as server:
        outcome = make_sender().send(ce_request(server.url + "/track"))
    assert outcome.result != "rejected"
    assert outcome.delivered and outcome.attempts == 2


# ----- what goes on the wire --------------------------------------------------------------

def test_user_agent_header_is_the_visitors(woopra, make_sender):
    make_sender().send(ce_request(woopra.url, user_agent=UA))
    assert woopra.requests[0]["headers"]["user-agent"] == UA


def test_without_visitor_user_agent_a_fallback_is_sent_not_the_library_default(woopra, make_sender):
    make_sender().send(ce_request(woopra.url, user_agent=None))
    sent = woopra.requests[0]["headers"]["user-agent"]
    assert sent == FALLBACK_USER_AGENT
    assert "python-requests" not in sent


def test_params_are_url_encoded_and_survive_the_round_trip(woopra, make_sender):
    tricky = {
        "cv_name": "Jane Doe",
        "ce_query": "a=b&c=d",
        "ce_plus": "1+1 = 2",
        "ce_percent": "100% sure",
        "ce_unicode": "Zoë 日本語 ☕",
        "ce_hash": "#frag?x=/y",
        "ce_json": '{"a":[1,2]}',
        "ce_empty": "",
    }
    outcome = make_sender().send(ce_request(woopra.url, **tricky))
    assert outcome.result == "delivered_200"
    record = woopra.requests[0]
    assert record["path"] == "/track/ce/"
    for key, value in tricky.items():
        assert record["params"][key] == value, key
    assert " " not in record["query"] and "#" not in record["query"]
    assert dict(parse_qsl(record["query"], keep_blank_values=True))["ce_query"] == "a=b&c=d"


def test_identify_request_goes_to_identify_path(woopra, make_sender):
    request = WoopraRequest(url=f"{woopra.url}/identify/", params=(("project", "p"), ("cv_email", "a@x.com")),
                            user_agent=UA, event={})
    assert make_sender().send(request).result == "delivered_200"
    assert woopra.requests[0]["path"] == "/track/identify/"
    assert woopra.requests[0]["method"] == "GET"


def test_seed_purchase_reaches_woopra_with_every_seed_param_and_the_user_agent(woopra, make_sender):
    identify = {
        "type": "identify", "anonymousId": "f47ac10b", "userId": "user-123",
        "timestamp": "2026-03-02T09:18:05.000Z",
        "traits": {"email": "jane.doe@example.com", "name": "Jane Doe", "company": "Acme Ltd"},
        "context": {"ip": "203.0.113.50", "userAgent": UA}, "vendor_ids": {"woopra_cookie": "AH47DHS5SF182DIQZJD"},
    }
    purchase = {
        "type": "track", "event": "Order Completed", "anonymousId": "f47ac10b", "userId": "user-123",
        "timestamp": "2026-03-02T09:21:47.005Z",
        "properties": {"order_id": "ORD-001", "revenue": 149.95, "currency": "USD", "coupon": "WELCOME10"},
        "context": {"ip": "203.0.113.50", "userAgent": UA}, "vendor_ids": {"woopra_cookie": "AH47DHS5SF182DIQZJD"},
    }
    settings = WoopraSettings(project="mywebsite.com", endpoint=woopra.url)
    identity = VisitorIdentity()
    sender = make_sender()
    for obj in (identify, purchase):
        request = build_request(enrich(validate_event(copy.deepcopy(obj)), identity), settings)
        assert sender.send(request).result == "delivered_200"
    ce = woopra.requests[1]
    assert woopra.requests[0]["path"] == "/track/identify/"
    assert ce["path"] == "/track/ce/"
    expected = {"project": "mywebsite.com", "response": "json", "timeout": "1800000", "ce_app": "datafly-signal",
                "event": "purchase", "cookie": "AH47DHS5SF182DIQZJD", "ip": "203.0.113.50",
                "cv_email": "jane.doe@example.com", "cv_name": "Jane Doe", "ce_order_id": "ORD-001",
                "ce_amount": "149.95", "ce_currency": "USD", "ce_coupon": "WELCOME10"}
    assert {k: ce["params"].get(k) for k in expected} == expected
    assert ce["headers"]["user-agent"] == UA
    assert "cv_name=Jane+Doe" in ce["query"]


# ----- batches, concurrency, rate limit ---------------------------------------------------

def test_send_all_returns_outcomes_in_input_order(woopra, make_sender):
    woopra.set_rules([
        Rule(match={"event": "bad"}, statuses=[400]),
        Rule(match={"event": "queued"}, statuses=[202]),
        Rule(match={"event": "flaky"}, statuses=[503, 200]),
        Rule(match={"event": "slow"}, statuses=[200], delay_ms=100),
    ])
    names = ["slow", "bad", "ok", "queued", "flaky"] * 4
    batch = [ce_request(woopra.url, event=name, n=str(i)) for i, name in enumerate(names)]
    outcomes = send_all(make_sender(max_in_flight=4), batch)
    expected = {"slow": "delivered_200", "bad": "rejected", "ok": "delivered_200", "queued": "delivered_202",
                "flaky": "delivered_200"}
    assert [o.result for o in outcomes] == [expected[n] for n in names]
    assert [o.request for o in outcomes] == batch
    assert len(woopra.requests) == len(names) + names.count("flaky")


def test_submit_returns_a_future_of_the_outcome(woopra, make_sender):
    future = make_sender().submit(ce_request(woopra.url))
    assert future.result(timeout=10).result == "delivered_200"


class BarrierHandler(BaseHTTPRequestHandler):
    """Answers 200 only once ``server.barrier`` parties are waiting at the same time, else 400."""

    def do_GET(self):  # noqa: N802 - http.server's name
        try:
            self.server.barrier.wait(timeout=5.0)
            status = 200
        except threading.BrokenBarrierError:
            status = 400
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_max_in_flight_requests_are_in_flight_together(make_sender):
    server = ThreadingHTTPServer(("127.0.0.1", 0), BarrierHandler)
    server.daemon_threads = True
    server.barrier = threading.Barrier(6)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/track"
        batch = [ce_request(base, n=str(i)) for i in range(6)]
        policy = RetryPolicy(max_attempts=1)
        outcomes = send_all(make_sender(policy=policy, max_in_flight=6), batch)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert [o.result for o in outcomes] == ["delivered_200"] * 6


class CountingLimiter(TokenBucket):
    def __init__(self):
        super().__init__(rate=1_000_000)
        self.calls = 0
        self.lock = threading.Lock()

    def reserve(self):
        with self.lock:
            self.calls += 1
        return 0.0


def test_every_attempt_takes_a_rate_limit_token(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "flaky"}, statuses=[503, 503, 200])])
    limiter = CountingLimiter()
    outcome = make_sender(limiter=limiter).send(ce_request(woopra.url, event="flaky"))
    assert outcome.attempts == 3
    assert limiter.calls == 3


def test_keep_alive_reuses_the_connection(woopra, make_sender):
    sender = make_sender(max_in_flight=1)
    for i in range(5):
        assert sender.send(ce_request(woopra.url, n=str(i))).result == "delivered_200"
    assert len(woopra.requests) == 5
    assert woopra.connections == 1


def test_dead_letter_response_body_is_cut_at_1_kib(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "bad"}, statuses=[400], body="x" * 5000)])
    outcome = make_sender().send(ce_request(woopra.url, event="bad"))
    assert outcome.result == "rejected"
    body = outcome.dead_letter().to_dict()["response_body"]
    assert body == "x" * 1024


def test_dead_letter_non_ascii_response_body_is_at_most_1_kib_of_utf8(woopra, make_sender):
    woopra.set_rules([Rule(match={"event": "bad"}, statuses=[400], body="é" * 3000)])
    outcome = make_sender().send(ce_request(woopra.url, event="bad"))
    assert outcome.result == "rejected"
    body = outcome.dead_letter().to_dict()["response_body"]
    assert body and set(body) == {"é"}
    assert len(body.encode("utf-8")) <= 1024
