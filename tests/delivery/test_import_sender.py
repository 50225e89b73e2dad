"""transforms/delivery/import_sender.py against the stand-in's Import API (127.0.0.1 only; every loop bounded).

A poisoned visit isolated by halving, 429 with Retry-After, 5xx and dropped connections retried,
credentials refused without halving, and the call budget held on the wire.
"""

from __future__ import annotations

import json
import time

import pytest

from transforms.delivery.call_budget import CallLimit
from transforms.delivery.import_sender import ImportCredentials, ImportDelivery, ImportSender
from transforms.delivery.retry import RetryPolicy
from transforms.rules.import_visits import ImportBody, ImportCall, split_visits
from transforms.rules.outcomes import Outcome
from woopra_standin import Rule, StandIn
from woopra_standin.server import IMPORT_APP_ID, IMPORT_SECRET_KEY

KEYS = ImportCredentials(IMPORT_APP_ID, IMPORT_SECRET_KEY)
ROOMY = (CallLimit(10_000, 60.0),)


@pytest.fixture
def server():
    with StandIn(port=0) as standin:
        yield standin


def body_of(count: int, poisoned: int | None = None) -> ImportBody:
    visits = []
    for n in range(count):
        email = "poison@example.com" if n == poisoned else f"v{n}@example.com"
        action = json.dumps({"name": "pv", "time": 1_700_000_000_000 + n, "properties": {"n": str(n)}})
        call = ImportCall(1_700_000_000_000 + n, n.to_bytes(16, "big"), action, json.dumps({"email": email}))
        visits += split_visits([call], timeout_ms=1)
    return ImportBody(tuple(visits))


def sender_for(server: StandIn, sleeps: list[float] | None = None, limits=ROOMY, credentials=KEYS,
               max_attempts: int = 4, timeout: float = 5.0) -> ImportSender:
    settings = ImportDelivery(server.import_url, "example.com", limits, max_in_flight=2, request_timeout=timeout,
                              retry=RetryPolicy(max_attempts=max_attempts, max_retry_seconds=60))
    if sleeps is None:
        return ImportSender(settings, credentials)
    return ImportSender(settings, credentials, sleep=sleeps.append)


def test_a_body_is_imported_with_basic_auth_and_the_project(server):
    imported = []
    outcome = sender_for(server).submit(body_of(5), imported.append).result(timeout=30)
    assert [r.result for r in outcome.results] == [Outcome.IMPORTED] * 5 and outcome.calls == 1
    assert len(imported) == 5 and len(server.imported_visits) == 5
    (request,) = server.requests
    assert request["params"] == {"project": "example.com"} and request["authorized"]


def test_a_poisoned_visit_is_isolated_by_halving_and_only_it_is_rejected(server):
    server.set_rules([Rule(match={"_body": "poison@example.com"}, statuses=[400], body='{"error":"bad visit"}')])
    outcome = sender_for(server).deliver(body_of(16, poisoned=11))
    rejected = [r for r in outcome.results if r.result is Outcome.REJECTED]
    assert len(rejected) == 1 and "poison@example.com" in rejected[0].visit.line
    assert rejected[0].status == 400 and rejected[0].response_body == '{"error":"bad visit"}'
    assert sum(r.result is Outcome.IMPORTED for r in outcome.results) == 15
    assert len(server.imported_visits) == 15
    assert outcome.calls == len(server.requests) <= 1 + 2 * 4  # log2(16) halvings, two calls each
    assert outcome.retries == 0  # halves are not retries


def test_a_429_waits_its_retry_after_and_holds_back_the_next_calls(server):
    server.set_rules([Rule(statuses=[429, 200], retry_after="7")])
    sleeps: list[float] = []
    sender = sender_for(server, sleeps)
    outcome = sender.deliver(body_of(3))
    assert [r.result for r in outcome.results] == [Outcome.IMPORTED] * 3 and (outcome.calls, outcome.retries) == (2, 1)
    assert sleeps and sleeps[0] >= 7  # the backoff honours Retry-After
    assert sender.budget.reserve() > 5  # and the budget starts no call before it is over
    assert sender.rate_limited == 1


def test_5xx_and_dropped_connections_are_retried_then_exhausted(server):
    server.set_rules([Rule(match={"_body": "v0@"}, drop_attempts=1, statuses=[503, 200]),
                      Rule(statuses=[503])])
    sleeps: list[float] = []
    sender = sender_for(server, sleeps, max_attempts=3)
    recovered = sender.deliver(body_of(1))
    assert recovered.results[0].result is Outcome.IMPORTED and recovered.calls == 3
    exhausted = sender.deliver(ImportBody(body_of(3).visits[1:]))
    assert [r.result for r in exhausted.results] == [Outcome.RETRIES_EXHAUSTED] * 2 and exhausted.calls == 3
    assert exhausted.results[0].status == 503 and len(sleeps) == 4


def test_wrong_credentials_reject_the_whole_body_without_halving(server):
    outcome = sender_for(server, credentials=ImportCredentials("standin-app", "wrong")).deliver(body_of(8))
    assert [r.result for r in outcome.results] == [Outcome.REJECTED] * 8 and outcome.calls == 1
    assert outcome.results[0].status == 401 and not server.imported_visits


def test_the_call_budget_holds_on_the_wire(server):
    sender = sender_for(server, limits=(CallLimit(2, 1.0),))
    started = time.monotonic()
    futures = [sender.submit(body_of(1)) for _ in range(6)]
    assert all(f.result(timeout=30).results[0].result is Outcome.IMPORTED for f in futures)
    assert time.monotonic() - started >= 1.9  # 6 calls at 2 a second: the last starts 2 s in
    arrived = sorted(r["received_at"] for r in server.requests)
    for at in arrived:  # no 0.9 s window (less network jitter than a whole second) holds more than 2
        assert sum(at <= other < at + 0.9 for other in arrived) <= 2
    sender.close()


def test_the_secret_is_not_in_the_credentials_repr():
    assert "standin-secret" not in repr(KEYS) and "standin-secret" not in str(KEYS)
