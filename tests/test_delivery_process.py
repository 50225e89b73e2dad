"""The delivery child process: same outcomes as the in-process sender; nothing lost if it dies."""

from __future__ import annotations

from transforms.deliver import DeliverySettings
from transforms.delivery_process import DeliveryProcess
from transforms.retry import RetryPolicy
from transforms.woopra_mapping import WoopraRequest
from woopra_standin import Rule


def _request(url: str, n: int, event: str = "e") -> WoopraRequest:
    return WoopraRequest(url + "/ce/", (("event", event), ("n", str(n))), "Agent/1.0", {"n": n})


def test_child_process_sends_retries_and_answers_each_request(standin):
    standin.set_rules([Rule(match={"event": "bad"}, statuses=[400]),
                       Rule(match={"event": "flaky"}, statuses=[503, 200])])
    sender = DeliveryProcess(DeliverySettings(rate_limit=1000, max_in_flight=4,
                                              retry=RetryPolicy(max_attempts=2, backoff_initial=0.01)))
    try:
        requests = [_request(standin.url, n) for n in range(20)]
        requests += [_request(standin.url, 20, "bad"), _request(standin.url, 21, "flaky")]
        outcomes = sender.send_all(requests)
    finally:
        sender.close()
    assert [o.result for o in outcomes] == ["delivered_200"] * 20 + ["rejected", "delivered_200"]
    assert [o.request for o in outcomes] == requests  # the original requests, events included
    assert outcomes[-1].attempts == 2 and outcomes[-2].status == 400
    assert {r["headers"]["user-agent"] for r in standin.requests} == {"Agent/1.0"}
    assert not sender._process.is_alive()


def test_requests_of_a_dead_child_become_dead_letters_not_losses(standin):
    standin.set_rules([Rule(match={"event": "slow"}, delay_ms=5000)])
    sender = DeliveryProcess(DeliverySettings(rate_limit=1000, max_in_flight=4))
    try:
        futures = [sender.submit(_request(standin.url, n, "slow")) for n in range(3)]
        assert standin.wait_for(1, timeout=30)  # the child is up and sending
        sender._process.kill()
        outcomes = [f.result(timeout=30) for f in futures]
    finally:
        sender.close()
    assert {o.result for o in outcomes} == {"retries_exhausted"}
    assert all("delivery process" in o.error for o in outcomes)
    assert outcomes[0].dead_letter().event == {"n": 0}
