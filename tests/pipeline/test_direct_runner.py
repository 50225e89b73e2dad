"""The DirectRunner fixes (pipeline/direct_runner.py), in a fresh process each: they patch Beam's
internals for the whole process, and the rest of the suite runs on Beam as it is. Jobs that use
them: every ``python -m pipeline --streaming`` run of tests/e2e.

Every fix must apply on the Beam installed here, which is a Beam the project supports (the lock's
in CI, the newest setup.py allows in the canary lane): a Beam release that moves what a fix relies
on fails this test by name instead of slowing local streaming down in silence."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.direct_runner import LOCAL_PULL_MESSAGES, _LargerPulls
from tests.conftest import ROOT, subprocess_env

pytestmark = pytest.mark.canary  # also run on the newest versions (.ci/run)

CHECK = r"""
import json
import apache_beam as beam
from apache_beam.runners.direct import transform_evaluator
from apache_beam.transforms import userstate
from pipeline.direct_runner import FIXES, speed_up_direct_runner
from transforms.deliver import _DeliverFn
from transforms.delivery.settings import DeliverySettings
from transforms.identity_streaming import _EnrichIdentityStatefulFn

original = userstate.get_dofn_specs
dofns = [_EnrichIdentityStatefulFn(1000, 1000), _DeliverFn(DeliverySettings()),
         beam.Map(len).dofn, beam.Map(str).dofn]
before = [original(dofn) for dofn in dofns]
applied = speed_up_direct_runner()
again = speed_up_direct_runner()
after = [userstate.get_dofn_specs(dofn) for dofn in dofns]
print(json.dumps({
    "applied": applied, "again": again,
    "same_specs": [sorted(map(repr, b[0])) == sorted(map(repr, a[0])) and
                   sorted(map(repr, b[1])) == sorted(map(repr, a[1])) for b, a in zip(before, after)],
    "stateful_has_state": len(after[0][0]) == 3 and len(after[0][1]) == 2,
    "runner_uses_it": transform_evaluator.get_dofn_specs is userstate.get_dofn_specs,
    "problems": {fix.name: fix.problem() for fix in FIXES},
}))
"""


def test_the_fixes_apply_once_and_keep_every_dofns_state_and_timers():
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["problems"] == {"dofn_specs_per_class": None, "no_empty_bundles": None, "larger_pubsub_pulls": None}
    assert found["applied"] == found["again"] == ["dofn_specs_per_class", "no_empty_bundles", "larger_pubsub_pulls"]
    assert "WARNING" not in done.stderr
    assert found["same_specs"] == [True, True, True, True]
    assert found["stateful_has_state"] and found["runner_uses_it"]


STREAM = r"""
import json, sys, time
import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.timestamp import Timestamp
from transforms.enrich_identity import EnrichIdentity
from transforms.rules.events import validate_event

if sys.argv[1] == "fixed":
    from pipeline.direct_runner import speed_up_direct_runner
    speed_up_direct_runner()
now = int(time.time() * 1000)
stream = TestStream()
for n in range(40):
    fields = {"type": "identify" if n % 7 == 0 else "track", "event": "Signed Up", "anonymousId": f"v-{n % 5}",
              "timestamp": Timestamp(micros=(now + n) * 1000).to_rfc3339(), "messageId": f"m-{n % 35}",
              "traits": {"plan": f"p{n}"}, "context": {"consent": {"analytics": True}}}
    event = validate_event(fields, source=f"s:{n}")
    stream.add_elements([beam.window.TimestampedValue(event, event.timestamp_ms / 1000)])
    stream.advance_watermark_to(Timestamp(micros=(now + n + 1) * 1000))
out = []
with beam.Pipeline(runner="BundleBasedDirectRunner", options=PipelineOptions(["--streaming"])) as p:
    enriched = p | stream.advance_watermark_to_infinity() | EnrichIdentity()
    _ = enriched.events | beam.Map(lambda e: print("OUT", json.dumps([e.visitor, e.timestamp_ms - now,
                                                                      e.traits.get("plan")]), flush=True))
"""


def test_a_streaming_identity_pipeline_gives_the_same_output_with_and_without_them():
    outputs = {}
    for mode in ("stock", "fixed"):
        done = subprocess.run([sys.executable, "-c", STREAM, mode], cwd=ROOT, env=subprocess_env(),
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        outputs[mode] = sorted(line for line in done.stdout.splitlines() if line.startswith("OUT "))
    assert len(outputs["stock"]) == 35 and outputs["stock"] == outputs["fixed"]  # 40 calls, 5 copies dropped


MISSING = r"""
import logging
from apache_beam.runners.direct import transform_evaluator
from pipeline.direct_runner import speed_up_direct_runner
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
del transform_evaluator._PubSubReadEvaluator  # as a Beam release that renamed it would have it
print("APPLIED", speed_up_direct_runner(), speed_up_direct_runner())
"""


def test_a_fix_whose_parts_are_gone_is_one_warning_saying_what_it_costs_and_the_others_still_apply():
    done = subprocess.run([sys.executable, "-c", MISSING], cwd=ROOT, env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "APPLIED ['dofn_specs_per_class', 'no_empty_bundles'] ['dofn_specs_per_class', 'no_empty_bundles']" \
        in done.stdout
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1
    assert "larger_pubsub_pulls (the DirectRunner has no _PubSubReadEvaluator; costs 10 messages per bundle" \
        in warnings[0]


class _RecordingClient:
    def __init__(self) -> None:
        self.pulls: list[dict] = []
        self.acknowledged: list[str] = []

    def pull(self, **kwargs: object) -> str:
        self.pulls.append(kwargs)
        return "response"

    def acknowledge(self, subscription: str, ack_ids: list[str]) -> None:
        self.acknowledged.extend(ack_ids)


def test_the_wrapped_pubsub_client_asks_for_more_messages_and_acknowledges_as_before() -> None:
    client = _RecordingClient()
    wrapped = _LargerPulls(client)
    # What Beam's evaluator asks for; the rest of its call goes through unchanged.
    assert wrapped.pull(subscription="projects/p/subscriptions/s", max_messages=10, timeout=30) == "response"
    assert client.pulls == [{"subscription": "projects/p/subscriptions/s", "max_messages": LOCAL_PULL_MESSAGES,
                             "timeout": 30}]
    wrapped.acknowledge(subscription="projects/p/subscriptions/s", ack_ids=["a", "b"])
    assert client.acknowledged == ["a", "b"]
