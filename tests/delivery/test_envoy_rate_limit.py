"""The global rate limit through Beam's EnvoyRateLimiter, against a local fake Envoy RLS."""

from __future__ import annotations

import json
import time

from tests.conftest import SAMPLES
from tests.e2e.test_end_to_end import SAMPLE_DELIVERABLE, run_pipeline
from tests.support.envoy_rls import FakeRateLimitService
from tests.support.sending import send_all
from transforms.delivery.rate_limit import envoy_rate_limiter
from transforms.delivery.retry import RetryPolicy
from transforms.delivery.sender import WoopraSender
from transforms.rules.events import validate_event
from transforms.rules.identity import VisitorIdentity, enrich
from transforms.rules.woopra_mapping import WoopraSettings, build_request


def _requests(endpoint: str, count: int):
    settings = WoopraSettings(project="mywebsite.com", endpoint=endpoint)
    for i in range(count):
        event = validate_event({"type": "track", "event": "Signed Up", "anonymousId": f"v-{i}",
                                "timestamp": "2026-03-02T09:00:00Z"})
        yield build_request(enrich(event, VisitorIdentity()), settings)


def test_every_request_waits_for_the_global_limiter(standin):
    with FakeRateLimitService(limit_per_second=20) as rls:
        sender = WoopraSender(RetryPolicy(max_attempts=1), max_in_flight=16,
                              limiter=envoy_rate_limiter(rls.address, "mywebsite.com"))
        try:
            started = time.monotonic()
            outcomes = send_all(sender, list(_requests(standin.url, 50)))
            elapsed = time.monotonic() - started
        finally:
            sender.close()
    assert [o.result for o in outcomes] == ["delivered_200"] * 50
    assert len(standin.requests) == 50
    allowed = rls.allowed_per_window()
    assert sum(allowed.values()) == 50 and max(allowed.values()) <= 20
    assert any(not ok for *_, ok in rls.calls)  # some asks were refused and waited
    assert elapsed >= 1.0  # 50 at 20 per one-second window spans at least two windows
    assert {(domain, descriptor) for _, domain, descriptor, _ in rls.calls} == {
        ("woopra", (("woopra_project", "mywebsite.com"),))}


def test_pipeline_uses_the_envoy_limiter_when_given_an_address(tmp_path, standin):
    with FakeRateLimitService(limit_per_second=1000) as rls:
        done = run_pipeline("--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
                            "--woopra_endpoint", standin.url, "--rate_limiter_address", rls.address,
                            "--dead_letter", str(tmp_path / "dead") + "/", "--summary", str(tmp_path / "s.json"))
        assert done.returncode == 0, done.stderr
        asked = [call for call in rls.calls if call[3]]
    assert json.loads((tmp_path / "s.json").read_text())["delivered_200"] == SAMPLE_DELIVERABLE
    assert len(asked) == SAMPLE_DELIVERABLE == len(standin.requests)
