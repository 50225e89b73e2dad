"""Shared fixtures: pinned local runners, the Woopra stand-in, sample paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from woopra_standin import StandIn  # noqa: E402

# Beam's DirectRunner would first try to download the Prism runner: pin local runners.
BATCH_RUNNER = "FnApiRunner"
STREAMING_RUNNER = "BundleBasedDirectRunner"


def batch_pipeline() -> TestPipeline:
    """A TestPipeline on the offline batch runner."""
    return TestPipeline(runner=BATCH_RUNNER, options=PipelineOptions([]))


def streaming_pipeline() -> TestPipeline:
    """A TestPipeline on the streaming-capable local runner (TestStream, Pub/Sub)."""
    return TestPipeline(runner=STREAMING_RUNNER, options=PipelineOptions(["--streaming"]))


@pytest.fixture
def standin():
    """A Woopra stand-in on a free loopback port, stopped after the test."""
    server = StandIn(port=0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sample_events() -> Path:
    """The bundled sample events file."""
    return SAMPLES / "events.jsonl"


def subprocess_env() -> dict[str, str]:
    """Environment for ``python -m pipeline`` subprocesses: the repo importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


EMULATOR_SCRIPT = ROOT / "scripts" / "pubsub_emulator.sh"


@pytest.fixture(scope="session")
def pubsub_emulator():
    """``host:port`` of a running Pub/Sub emulator: the one in PUBSUB_EMULATOR_HOST, or one
    this session starts (and stops) with scripts/pubsub_emulator.sh."""
    import subprocess

    existing = os.environ.get("PUBSUB_EMULATOR_HOST")
    if existing:
        yield existing
        return
    port = os.environ.get("PUBSUB_PORT", "8085")
    env = dict(os.environ, PUBSUB_PORT=port)
    started = subprocess.run(["bash", str(EMULATOR_SCRIPT), "start"], env=env, capture_output=True,
                             text=True, timeout=240)
    if started.returncode != 0:
        raise RuntimeError(f"could not start the Pub/Sub emulator:\n{started.stdout}\n{started.stderr}")
    host = f"127.0.0.1:{port}"
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield host
    finally:
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        subprocess.run(["bash", str(EMULATOR_SCRIPT), "stop"], env=env, capture_output=True, timeout=60)
