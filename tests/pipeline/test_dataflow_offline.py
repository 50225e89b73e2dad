"""The job on Dataflow, proved offline: Beam's own Dataflow translation, without contacting Google.

Beam's ``--dry_run=true`` (TestOptions) with ``--no_auth`` makes the DataflowRunner build the job
and return before it creates an API client. Any request that still tried to leave the machine would
go to a proxy on 127.0.0.1 that refuses it (``offline`` below), so nothing reaches a remote host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import DebugOptions, PipelineOptions, WorkerOptions
from apache_beam.runners.dataflow.internal import apiclient
from apache_beam.runners.portability.stager import Stager

from pipeline.dataflow_rules import vcpus_per_worker
from pipeline.graph import build_pipeline
from pipeline.launcher import parse_command_line, report_submitted
from pipeline.options import OptionsError
from tests.conftest import ROOT, subprocess_env

IMAGE = "europe-docker.pkg.dev/my-project/woopra/pipeline:1"
DATAFLOW = ["--runner", "DataflowRunner", "--project", "my-project", "--region", "europe-west1",
            "--temp_location", "gs://my-bucket/tmp", "--no_auth", "--dry_run=true", "--sdk_location", "container",
            "--sdk_container_image", IMAGE, "--woopra_project", "example.com",
            "--autoscaling_algorithm", "NONE", "--num_workers", "2"]  # a fixed pool: the rate shares hold
BATCH = [*DATAFLOW, "--input", "gs://my-bucket/events/*.jsonl", "--dead_letter", "gs://my-bucket/dead/"]
STREAMING = [*DATAFLOW, "--streaming", "--input_subscription", "projects/my-project/subscriptions/events",
             "--dead_letter", "projects/my-project/topics/dead-letters"]
STEPS = ("Read", "Parse", "Consent", "Identity", "MapToWoopra", "Deliver", "CollectDeadLetters", "DeadLetter")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any HTTP(S) or gRPC request to a remote host goes to a refusing proxy on loopback."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "grpc_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_GCE_CHECK", "true")


def translated(argv: list[str]):  # type: ignore[no-untyped-def]
    """The job as Beam's DataflowRunner builds it, not submitted: (options, apiclient.Job)."""
    options, job = parse_command_line(argv)
    result = build_pipeline(beam.Pipeline(options=options), job).run()
    return options, result.job


def description(options, dataflow_job) -> dict:  # type: ignore[no-untyped-def]
    """The full job description Dataflow would receive (what Beam's client sends, less the staging)."""
    environment = apiclient.Environment(
        packages=[], options=options, environment_version="0",
        proto_pipeline_staged_url="gs://my-bucket/staging/pipeline.pb", proto_pipeline=dataflow_job.proto_pipeline)
    dataflow_job.proto.environment = environment.proto
    return json.loads(dataflow_job.json())


def top_level_steps(dataflow_job) -> set[str]:  # type: ignore[no-untyped-def]
    """The names of the graph's own steps in the translated pipeline."""
    components = dataflow_job.proto_pipeline.components
    roots = dataflow_job.proto_pipeline.root_transform_ids
    names = set()
    for root in roots:
        for child in components.transforms[root].subtransforms:
            names.add(components.transforms[child].unique_name)
    return names


def container_images(dataflow_job) -> set[str]:  # type: ignore[no-untyped-def]
    from apache_beam.portability.api import beam_runner_api_pb2

    images = set()
    for environment in dataflow_job.proto_pipeline.components.environments.values():
        payload = beam_runner_api_pb2.DockerPayload.FromString(environment.payload)
        images.add(payload.container_image)
    return images


@pytest.mark.parametrize("argv, job_type", [(BATCH, "JOB_TYPE_BATCH"), (STREAMING, "JOB_TYPE_STREAMING")])
def test_the_job_translates_for_dataflow_offline(argv, job_type):
    options, dataflow_job = translated(argv)
    assert dataflow_job.proto.type.name == job_type
    assert set(STEPS) <= top_level_steps(dataflow_job)
    assert container_images(dataflow_job) == {IMAGE}
    # One SDK process per vCPU: what the rate share counts on (pipeline/dataflow_rules.py, worker_processes).
    experiments = set(description(options, dataflow_job)["environment"]["experiments"])
    assert "use_multiple_sdk_containers" in experiments, experiments


def transform_named(dataflow_job, name: str):  # type: ignore[no-untyped-def]
    """The translated transform whose full name is ``name``."""
    transforms = dataflow_job.proto_pipeline.components.transforms
    (found,) = [transform for transform in transforms.values() if transform.unique_name == name]
    return found


@pytest.mark.parametrize("argv", [BATCH, STREAMING], ids=["batch", "streaming"])
def test_the_outcomes_of_send_are_checkpointed_before_any_write(argv):
    """A reshuffle right after Send: a failing dead-letter write retries from there, not from Send."""
    _, dataflow_job = translated(argv)
    send_outputs = set(transform_named(dataflow_job, "Deliver/Send").outputs.values())
    assert len(send_outputs) == 2  # delivered and dead letters
    checkpointed = set()
    for name in ("Deliver/CheckpointDelivered", "Deliver/CheckpointDeadLetters"):
        checkpoint = transform_named(dataflow_job, name)
        assert set(checkpoint.inputs.values()) <= send_outputs, name
        checkpointed |= set(checkpoint.inputs.values())
        assert any("Reshuffle" in part.unique_name or "GroupByKey" in part.unique_name
                   for part in dataflow_job.proto_pipeline.components.transforms.values()
                   if part.unique_name.startswith(name + "/")), f"{name} is not a reshuffle"
    assert checkpointed == send_outputs
    # Nothing but the checkpoints reads what Send outputs.
    readers = [transform.unique_name for transform in dataflow_job.proto_pipeline.components.transforms.values()
               if set(transform.inputs.values()) & send_outputs and not transform.subtransforms]
    assert readers and all(name.startswith(("Deliver/CheckpointDelivered/", "Deliver/CheckpointDeadLetters/"))
                           for name in readers), readers


def test_the_full_job_description_and_the_staged_package(tmp_path):
    """The description Dataflow would receive, and the package its workers would install."""
    argv = [*BATCH, "--setup_file", str(ROOT / "setup.py"), "--staging_location", str(tmp_path / "staging")]
    options, dataflow_job = translated(argv)
    job = description(options, dataflow_job)
    assert job["type"] == "JOB_TYPE_BATCH"
    pool = job["environment"]["workerPools"][0]
    assert [image["containerImage"] for image in pool["sdkHarnessContainerImages"]] == [IMAGE]
    assert job["environment"]["sdkPipelineOptions"]["options"]["woopra_project"] == "example.com"

    # Beam's own stager builds the package from setup.py, as a real submission would.
    resources = Stager.create_job_resources(PipelineOptions(["--setup_file", str(ROOT / "setup.py")]),
                                            str(tmp_path), log_submission_env_dependencies=False)
    assert len(resources) == 1
    package = next(tmp_path.glob("*.tar.gz"))
    with tarfile.open(package) as archive:
        modules = {Path(*Path(name).parts[1:]).as_posix() for name in archive.getnames() if name.endswith(".py")}
        names = archive.getnames()
    worker_modules = {path.relative_to(ROOT).as_posix() for folder in ("pipeline", "transforms")
                      for path in (ROOT / folder).rglob("*.py")}
    assert worker_modules <= modules, sorted(worker_modules - modules)
    assert any(name.endswith("pipeline/tools/report.html") for name in names)
    assert not [m for m in modules if m.startswith(("tests/", "benchmarks/", "scripts/", "templates/"))]


def test_the_launcher_returns_at_once_on_dataflow():
    """A Flex Template launcher must not wait for its job: batch and streaming both return."""
    for argv, kind in ((BATCH, "batch"), (STREAMING, "streaming")):
        done = subprocess.run([sys.executable, "-m", "pipeline", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env=dict(subprocess_env(), HTTPS_PROXY="http://127.0.0.1:9",
                                                    HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost",
                                                    NO_GCE_CHECK="true"))
        assert done.returncode == 0, done.stderr
        assert f"{kind} job for Dataflow built but not submitted (dry run)" in done.stdout


def test_a_submitted_job_prints_its_id_and_console_page(capsys):
    class Submitted:
        has_job = True

        def job_id(self) -> str:
            return "2026-12-01_01_02_03-123"

    options, job = parse_command_line(BATCH)
    assert report_submitted(Submitted(), options, job) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "batch job submitted to Dataflow: 2026-12-01_01_02_03-123" in out
    assert ("https://console.cloud.google.com/dataflow/jobs/europe-west1/2026-12-01_01_02_03-123"
            "?project=my-project") in out


@pytest.mark.parametrize("extra, message", [
    (["--dead_letter", "dead_letter/"], "--dead_letter dead_letter/ is a local path"),
    (["--dry_run_output", "out/requests/"], "--dry_run_output out/requests/ is a local path"),
    (["--summary", "gs://my-bucket/summary.json"], "--summary is written when a local job ends"),
    (["--report", "report.html"], "--report is written when a local job ends"),
])
def test_local_outputs_are_refused_on_dataflow(extra, message):
    with pytest.raises(OptionsError, match=message):
        parse_command_line([*BATCH, *extra])


def test_the_default_dead_letter_folder_is_refused_on_dataflow():
    argv = [a for a in BATCH if a not in ("--dead_letter", "gs://my-bucket/dead/")]
    with pytest.raises(OptionsError, match="is a local path"):
        parse_command_line(argv)


@pytest.mark.parametrize("machine_type, streaming, vcpus", [
    (None, False, 1), (None, True, 2), ("n1-standard-4", False, 4), ("e2-highmem-16", True, 16),
    ("custom-8-30720", False, 8), ("n2-custom-4-8192", False, 4), ("c3-standard-4-lssd", False, 4),
    ("zones/europe-west1-b/machineTypes/n2-standard-8", False, 8),
])
def test_vcpus_per_worker(machine_type, streaming, vcpus):
    assert vcpus_per_worker(machine_type, streaming) == vcpus


def test_the_rate_is_shared_by_every_sdk_process_on_dataflow():
    """Dataflow runs one SDK process per vCPU: 3 workers of 4 vCPUs share --rate_limit 120 as 12 x 10/s."""
    options, job = parse_command_line([*BATCH, "--rate_limit", "120", "--num_workers", "3",
                                       "--machine_type", "n2-standard-4"])
    assert job.delivery.rate_limit == 10
    assert os.environ.get("NO_GCE_CHECK") == "true"


def without(argv: list[str], *flags: str) -> list[str]:
    """``argv`` less each of ``flags`` and its value."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        else:
            rest.append(arg)
    return rest


AUTOSCALED = without(BATCH, "--autoscaling_algorithm", "--num_workers")


@pytest.mark.parametrize("extra", [
    [],  # a batch run without --max_num_workers: the autoscaler picks the count
    ["--max_num_workers", "4"],  # update-options --max-num-workers can raise it after launch
    ["--autoscaling_algorithm", "THROUGHPUT_BASED", "--num_workers", "2", "--max_num_workers", "2"],
    ["--autoscaling_algorithm", "NONE"],  # no --num_workers: the count is Dataflow's choice
], ids=["no-sizing", "max-only", "autoscaling", "none-without-count"])
def test_dataflow_refuses_a_rate_limit_the_autoscaler_could_break(extra):
    with pytest.raises(OptionsError) as info:
        parse_command_line([*AUTOSCALED, *extra])
    assert str(info.value).startswith("--rate_limit on Dataflow needs a fixed worker pool (--autoscaling_algorithm=NONE"
                                      " --num_workers=N) or the shared limiter (--rate_limiter_address)")
    assert "\n" not in str(info.value)


def test_the_shared_limiter_keeps_the_limit_whatever_the_autoscaler_does():
    _, job = parse_command_line([*AUTOSCALED, "--max_num_workers", "10", "--rate_limiter_address", "10.0.0.5:8081"])
    assert job.delivery.rate_limiter_address == "10.0.0.5:8081"


def test_a_fixed_pool_shares_the_limit_by_its_processes():
    # 4 workers of 2 vCPUs: 8 processes of 12.5 requests/s; --max_num_workers means nothing without autoscaling.
    _, job = parse_command_line([*without(BATCH, "--num_workers"), "--num_workers", "4", "--max_num_workers", "40",
                                 "--machine_type", "n2-standard-2", "--rate_limit", "100"])
    assert job.delivery.rate_limit == 12.5


def test_fewer_rate_limit_processes_than_the_pool_are_refused_on_dataflow():
    with pytest.raises(OptionsError, match="--rate_limit_processes 2 is fewer than the job's 4 worker processes"):
        parse_command_line([*BATCH, "--machine_type", "n2-standard-2", "--rate_limit_processes", "2"])
    _, job = parse_command_line([*BATCH, "--machine_type", "n2-standard-2", "--rate_limit_processes", "8",
                                 "--rate_limit", "80"])
    assert job.delivery.rate_limit == 10  # more processes than run: the job sends less, never more


def test_exception_sampling_is_off_on_dataflow():
    """Dataflow samples a failing element (an event: emails, IPs) to temp_location unless told not to."""
    for argv in (BATCH, STREAMING):
        options, dataflow_job = translated(argv)
        experiments = set(description(options, dataflow_job)["environment"]["experiments"])
        assert "disable_always_on_exception_sampling" in experiments
    options, _ = parse_command_line([*BATCH, "--experiments=enable_always_on_exception_sampling"])
    assert "disable_always_on_exception_sampling" not in options.view_as(DebugOptions).experiments


def test_exception_sampling_is_not_touched_elsewhere():
    options, _ = parse_command_line(["--input", str(ROOT / "samples" / "events.jsonl"), "--woopra_project", "x"])
    assert "disable_always_on_exception_sampling" not in (options.view_as(DebugOptions).experiments or [])


@pytest.mark.parametrize("log_level, workers_default", [
    ("WARNING", "WARNING"), ("ERROR", "ERROR"), ("INFO", "INFO"),
    ("DEBUG", "INFO"),  # Beam's own DEBUG lines print whole elements: never on a worker
])
def test_log_level_sets_the_workers_loggers_too(log_level, workers_default):
    options, dataflow_job = translated([*BATCH, "--log_level", log_level])
    sent = description(options, dataflow_job)["environment"]["sdkPipelineOptions"]["options"]
    assert sent["default_sdk_harness_log_level"] == workers_default
    assert sent["sdk_harness_log_level_overrides"] == {"pipeline": log_level, "transforms": log_level}


def test_given_worker_log_levels_are_kept():
    options, _ = parse_command_line([*BATCH, "--default_sdk_harness_log_level", "ERROR",
                                     "--sdk_harness_log_level_overrides", '{"transforms": "ERROR"}'])
    workers = options.view_as(WorkerOptions)
    assert workers.default_sdk_harness_log_level == "ERROR"
    assert workers.sdk_harness_log_level_overrides == {"pipeline": "INFO", "transforms": "ERROR"}


def test_the_delivery_process_is_off_by_default_on_dataflow():
    """One SDK process per vCPU: a child process would share its parent's core (docs/delivery.md)."""
    _, job = parse_command_line(BATCH)
    assert job.delivery.separate_process is False
    _, job = parse_command_line([*BATCH, "--delivery_process", "on"])
    assert job.delivery.separate_process is True
    _, local = parse_command_line(["--input", str(ROOT / "samples" / "events.jsonl"), "--woopra_project", "x"])
    assert local.delivery.separate_process is True
