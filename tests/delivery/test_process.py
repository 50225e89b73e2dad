"""The delivery child process: same outcomes and metrics as the in-process sender; nothing lost if it
dies; deaf to Ctrl-C; gone when its parent is."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter

from tests.conftest import ROOT, batch_pipeline, subprocess_env
from tests.support.sending import send_all
from transforms.counters import NAMESPACE
from transforms.deliver import DeliverToWoopra
from transforms.delivery.process import DeliveryProcess
from transforms.delivery.retry import RetryPolicy
from transforms.delivery.sender import Pushback, PushbackReporter
from transforms.delivery.settings import DeliverySettings
from transforms.rules.woopra_mapping import WoopraRequest
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
        outcomes = send_all(sender, requests)
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


# ----- Woopra's pushback reported as Beam metrics, whichever process sends ----------------------


def _metric(result, name: str, kind: str):
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(name))[kind]
    assert len(query) == 1, (name, query)
    return query[0].committed


@pytest.mark.parametrize("separate_process", [True, False])
def test_pushback_metrics_are_reported_with_the_delivery_process_on_or_off(standin, separate_process):
    # The first ten requests get a 429 (then 200): the rate halves from 40/s and climbs back by
    # 4/s per quiet second, so the 70 attempts end while it is still below 40.
    standin.set_rules([Rule(match={"event": "busy"}, statuses=[429, 200])])
    settings = DeliverySettings(rate_limit=40, max_in_flight=4, separate_process=separate_process,
                                retry=RetryPolicy(max_attempts=3, backoff_initial=0.01))
    requests = [_request(standin.url, n, "busy" if n < 10 else "calm") for n in range(60)]
    pipeline = batch_pipeline()
    _ = pipeline | beam.Create(requests) | DeliverToWoopra(settings)
    started = time.monotonic()
    result = pipeline.run()
    result.wait_until_finish()
    wall = time.monotonic() - started

    assert sum(r["status"] == 429 for r in standin.requests) == 10
    assert _metric(result, "delivered_200", "counters") == 60
    assert _metric(result, "rate_limited_responses", "counters") == 10
    send_rate = _metric(result, "send_rate_per_second", "gauges").value
    assert 2 <= send_rate < 40, send_rate  # lowered (floor: 5% of 40), not yet recovered
    throttled = _metric(result, "cumulativeThrottlingSeconds", "counters")
    assert 1 <= throttled <= wall, (throttled, wall)


def test_pushback_reporter_reports_each_429_and_whole_second_once():
    reporter = PushbackReporter()
    assert reporter.unreported(Pushback(3, 0.6, 50.0)) == Pushback(3, 0, 50.0)
    assert reporter.unreported(Pushback(3, 1.7, 60.0)) == Pushback(0, 1, 60.0)  # 0.6 + 1.1: one whole second
    assert reporter.unreported(Pushback(5, 2.1, None)) == Pushback(2, 1, None)
    assert reporter.unreported(Pushback(5, 2.1, None)) == Pushback(0, 0, None)


# ----- Ctrl-C and a parent that dies ------------------------------------------------------------


def test_child_ignores_ctrl_c_and_keeps_serving(standin, capfd):
    sender = DeliveryProcess(DeliverySettings(rate_limit=1000, max_in_flight=2))
    try:
        assert sender.submit(_request(standin.url, 0)).result(timeout=60).result == "delivered_200"  # the child is up
        os.kill(sender.pid, signal.SIGINT)
        time.sleep(1.5)  # a child that took it as a KeyboardInterrupt has shut down by now
        assert sender._process.is_alive()
        assert sender.submit(_request(standin.url, 1)).result(timeout=30).result == "delivered_200"
    finally:
        sender.close()
    assert not sender._process.is_alive() and sender._process.exitcode == 0
    assert "KeyboardInterrupt" not in capfd.readouterr().err


PARENT_SCRIPT = """
import sys, time
from transforms.delivery.settings import DeliverySettings
from transforms.delivery.process import DeliveryProcess
from transforms.rules.woopra_mapping import WoopraRequest
sender = DeliveryProcess(DeliverySettings(rate_limit=1000, max_in_flight=2))
first = sender.submit(WoopraRequest(sys.argv[1] + "/ce/", (("event", "e"),), None, {}))
assert first.result(timeout=60).result == "delivered_200"
sender.submit(WoopraRequest(sys.argv[1] + "/ce/", (("event", "slow"),), None, {}))  # still in flight
print(sender.pid, flush=True)
time.sleep(60)
"""


def _running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_child_ends_soon_after_its_parent_dies_even_with_requests_in_flight(standin):
    standin.set_rules([Rule(match={"event": "slow"}, delay_ms=30_000)])
    # No pipes but stdout's first line: a child that outlived its parent would hold them open.
    parent = subprocess.Popen([sys.executable, "-c", PARENT_SCRIPT, standin.url], cwd=ROOT, env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    child = None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(parent.stdout, selectors.EVENT_READ)
            assert selector.select(90), "the parent script printed nothing"
        line = parent.stdout.readline()
        assert line.strip().isdigit(), line
        child = int(line)
        assert standin.wait_for(2, timeout=30)  # the slow request reached the server
        os.kill(child, signal.SIGINT)  # Ctrl-C in the terminal: the child stays for its parent
        time.sleep(1.5)
        assert _running(child)
        parent.kill()  # the pipe's parent end closes with it
        parent.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(child), "the delivery process outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=30)
        parent.stdout.close()
        if child is not None and _running(child):
            os.kill(child, signal.SIGKILL)


def test_the_delivery_process_starts_without_importing_beam():
    """What the child imports (its target's module, and ``python -m pipeline``'s main module,
    which a spawned child imports again) must not pull in Beam: it would cost seconds at the
    start of every delivering run."""
    check = ("import sys, runpy; import transforms.delivery.process, transforms.delivery.settings; "
             "runpy.run_module('pipeline.__main__', run_name='__mp_main__'); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'apache_beam'))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT,
                         env=subprocess_env(), timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_an_answer_runs_its_on_answer_before_anyone_sees_the_outcome():
    import threading

    from transforms.delivery.process import PendingOutcome, _set_outcomes
    from transforms.delivery.sender import DeliveryOutcome, SendResult
    from transforms.rules.outcomes import Outcome

    answered = threading.Condition()
    seen: list[str] = []
    early = PendingOutcome(answered,
                           lambda outcome: seen.append(f"on_answer {outcome.status}, visible: {early.done()}"))
    late = PendingOutcome(answered)
    with pytest.raises(TimeoutError):
        early.result(timeout=0.05)
    outcome = DeliveryOutcome(_request("http://127.0.0.1:9/track", 0), SendResult(Outcome.DELIVERED_200, 200, 1))
    waiter = threading.Thread(target=lambda: seen.append(f"waited {early.result(timeout=10).status}"))
    waiter.start()
    _set_outcomes(answered, [(early, outcome), (late, outcome)])
    waiter.join(timeout=10)
    assert seen == ["on_answer 200, visible: False", "waited 200"]
    assert early.done() and late.result() is outcome
