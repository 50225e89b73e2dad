"""One whole streaming run of the sample, as a user would start it: ``python -m pipeline --streaming``
on a Pub/Sub emulator subscription, delivering to the Woopra stand-in, dead letters as windowed
files, at ``--log_level DEBUG``. Several tests read its output (conftest's ``debug_streaming_run``),
so the suite pays for it once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from woopra_standin import StandIn

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "events.jsonl"
PROJECT = "woopra-test"
SAMPLE_DELIVERABLE = 16
SAMPLE_DEAD_LETTERS = 5
# An event the job counts `unsupported` and otherwise ignores. Beam's DirectRunner advances a Pub/Sub
# source's watermark only when a pull returns, and an idle pull waits up to 30 s: published every
# half second, this keeps the watermark moving so a window's dead-letter file is written in seconds.
KEEPALIVE = json.dumps({"type": "screen", "name": "keepalive", "anonymousId": "keepalive-visitor"})


@dataclass
class StreamingRun:
    """What the run printed and wrote."""

    stdout: str
    stderr: str
    returncode: int | None
    dead_letter_dir: Path
    requests: list[dict[str, Any]] = field(default_factory=list)

    def dead_letter_files(self) -> list[Path]:
        """The finished dead-letter files (Beam's temporary folder left out)."""
        return sorted(p for p in self.dead_letter_dir.glob("*.jsonl") if p.is_file())


def stop_job(job: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM a streaming job as a user's Ctrl-C would, and collect its output (killed after 60 s)."""
    if job.poll() is None:
        job.send_signal(signal.SIGTERM)
    try:
        return job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        job.kill()
        return job.communicate()


def wait_until(condition, timeout: float, step: float = 0.25) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def _dead_letter_count(folder: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.glob("*.jsonl") if p.is_file())


def run_sample_streaming(workdir: Path, emulator_host: str, extra_args: tuple[str, ...] = ()) -> StreamingRun:
    """Publish the sample, run the job until it delivered it and closed a dead-letter window, stop it
    with SIGTERM (as Ctrl-C would) and return what it printed. Bounded: about two minutes at most."""
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    suffix = uuid.uuid4().hex[:8]
    topic = f"projects/{PROJECT}/topics/stream-run-{suffix}"
    subscription = f"projects/{PROJECT}/subscriptions/stream-run-{suffix}"
    dead_dir = workdir / "dead_letter"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PUBSUB_EMULATOR_HOST"] = emulator_host
    standin = StandIn(port=0).start()
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)
    try:
        for future in [publisher.publish(topic, line.encode("utf-8"), origin="test")
                       for line in SAMPLE.read_text().splitlines()]:
            future.result(timeout=30)
        job = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "--streaming", "--input_subscription", subscription,
             "--project", PROJECT, "--config", str(ROOT / "samples" / "mapping.yaml"),
             "--woopra_endpoint", standin.url, "--dead_letter", str(dead_dir) + "/",
             "--dead_letter_window_seconds", "1", "--progress_interval_seconds", "1", *extra_args],
            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: len(standin.requests) >= SAMPLE_DELIVERABLE or job.poll() is not None, 120)
            deadline = time.monotonic() + 40
            while _dead_letter_count(dead_dir) < SAMPLE_DEAD_LETTERS and job.poll() is None \
                    and time.monotonic() < deadline:
                publisher.publish(topic, KEEPALIVE.encode("utf-8")).result(timeout=30)
                time.sleep(0.5)
            time.sleep(1.5)  # one more progress line, after the deliveries
        finally:
            stdout, stderr = stop_job(job)
        return StreamingRun(stdout, stderr, job.returncode, dead_dir, standin.requests)
    finally:
        standin.stop()
        subscriber.delete_subscription(subscription=subscription)
        publisher.delete_topic(topic=topic)
