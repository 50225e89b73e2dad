"""Every runner config in runner_configs/ loads and builds the job's graph; the command line wins."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest

from pipeline.graph import build_pipeline
from pipeline.launcher import parse_command_line
from tests.conftest import ROOT

CONFIGS = sorted((ROOT / "runner_configs").glob("*.yaml"))
BATCH = ["--input", str(ROOT / "samples" / "events.jsonl"), "--woopra_project", "example.com"]
STREAMING = ["--input_subscription", "projects/my-project/subscriptions/events", "--woopra_project", "example.com"]
DATAFLOW = ["--no_auth", "--project", "my-project", "--region", "europe-west1", "--temp_location", "gs://my-bucket/tmp",
            "--sdk_container_image", "europe-docker.pkg.dev/my-project/woopra/pipeline:1"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing may leave the machine: credentials and metadata look-ups go to a refusing loopback proxy."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085")


def command_for(config: Path) -> list[str]:
    text = config.read_text()
    argv = ["--runner_config", str(config)]
    if "DataflowRunner" in text:  # Beam's dry run: it never contacts Cloud Storage to check the buckets
        argv += DATAFLOW + ["--dead_letter", "gs://my-bucket/dead/", "--dry_run=true"]
    streaming = "streaming: true" in text
    return argv + (STREAMING if streaming else BATCH)


def test_the_expected_configs_are_there():
    assert {c.name for c in CONFIGS} == {"local.yaml", "local_streaming.yaml", "dataflow_streaming.yaml",
                                         "dataflow_batch.yaml", "portable.yaml", "flink.yaml", "spark.yaml"}


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_runner_config_builds_the_graph(config):
    options, job = parse_command_line(command_for(config))
    pipeline = build_pipeline(beam.Pipeline(options=options), job)
    labels = {transform.full_label for transform in pipeline.transforms_stack[0].parts}
    assert {"Read", "Parse", "Consent", "Identity", "MapToWoopra", "Deliver", "DeadLetter"} <= labels
    assert job.streaming == ("streaming: true" in config.read_text())


def test_the_command_line_wins_over_a_runner_config_streaming_included():
    config = ROOT / "runner_configs" / "local_streaming.yaml"
    _, job = parse_command_line(["--runner_config", str(config), "--streaming=false", *BATCH,
                                 "--progress_interval_seconds", "5", "--runner", "FnApiRunner"])
    assert not job.streaming and job.progress_interval_seconds == 5
    _, job = parse_command_line(["--runner_config", str(ROOT / "runner_configs" / "local.yaml"), "--streaming",
                                 *STREAMING, "--runner", "BundleBasedDirectRunner"])
    assert job.streaming
    options, job = parse_command_line(["--runner_config", str(ROOT / "runner_configs" / "dataflow_batch.yaml"),
                                       *DATAFLOW, "--dead_letter", "gs://my-bucket/dead/", *BATCH,
                                       "--rate_limit", "40", "--num_workers", "5"])
    # 5 workers of 2 vCPUs share 40 requests/s: 4 each.
    assert job.delivery.rate_limit == 4
