"""What a Dataflow launch must hold to: worker processes and the job-wide rate limit, the
defaults every Dataflow job gets, and outputs workers can reach (docs/deploy.md)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.options import OptionsError

if TYPE_CHECKING:
    from pipeline.job_settings import JobSettings


def worker_processes(options: PipelineOptions) -> int:
    """How many worker processes share the job's rate limit, each with its own token bucket.

    The DirectRunner's multi-processing mode runs ``direct_num_workers`` processes. Dataflow runs
    one SDK process per vCPU of each worker (Runner v2), so it is the workers (``--num_workers`` of
    a fixed pool; else ``--max_num_workers``, else ``--num_workers``) times the vCPUs of
    ``--machine_type``. For one exact global limit, use an Envoy Rate Limit Service
    (``--rate_limiter_address``).
    """
    from apache_beam.options.pipeline_options import DirectOptions, WorkerOptions

    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode == "multi_processing":
        return max(1, int(direct.direct_num_workers or os.cpu_count() or 1))
    if is_dataflow(options):
        workers = options.view_as(WorkerOptions)
        streaming = bool(options.view_as(StandardOptions).streaming)
        count = workers.num_workers if fixed_worker_pool(options) else workers.max_num_workers or workers.num_workers
        return max(1, int(count or 1)) * vcpus_per_worker(workers.machine_type, streaming)
    return 1


def fixed_worker_pool(options: PipelineOptions) -> bool:
    """True when Dataflow runs exactly ``--num_workers`` workers: autoscaling off (``--autoscaling_algorithm=NONE``)."""
    from apache_beam.options.pipeline_options import WorkerOptions

    workers = options.view_as(WorkerOptions)
    return str(workers.autoscaling_algorithm or "").upper() == "NONE" and bool(workers.num_workers)


DATAFLOW_RATE_LIMIT_RULE = ("--rate_limit on Dataflow needs a fixed worker pool (--autoscaling_algorithm=NONE "
                            "--num_workers=N) or the shared limiter (--rate_limiter_address): the autoscaler "
                            "would change how many processes share the limit (docs/delivery.md#on-dataflow)")


def check_dataflow_rate_limit_holds(options: PipelineOptions, processes: int) -> None:
    """Refuse a Dataflow launch whose per-process shares could add up to more than ``--rate_limit``.

    Each process gets a fixed share, computed here, at launch; only a fixed pool keeps the number
    of processes what the shares assume (docs/delivery.md, On Dataflow).
    """
    if not fixed_worker_pool(options):
        raise OptionsError(DATAFLOW_RATE_LIMIT_RULE)
    pool = worker_processes(options)
    if processes < pool:
        raise OptionsError(f"--rate_limit_processes {processes} is fewer than the job's {pool} worker processes "
                           "(--num_workers × the vCPUs of --machine_type): they would send more than --rate_limit; "
                           "leave it out on Dataflow")


# Dataflow's default machine types: n1-standard-1 for batch, n1-standard-2 for streaming.
DATAFLOW_DEFAULT_VCPUS = {False: 1, True: 2}


def vcpus_per_worker(machine_type: str | None, streaming: bool) -> int:
    """vCPUs of a Compute Engine machine type: ``n1-standard-4`` → 4, ``custom-8-30720`` → 8."""
    if not machine_type:
        return DATAFLOW_DEFAULT_VCPUS[streaming]
    # The first all-digit part is the vCPU count: n2-custom-4-8192, c3-standard-4-lssd, e2-highmem-16.
    digits = [part for part in machine_type.rsplit("/", 1)[-1].split("-") if part.isdigit()]
    return max(1, int(digits[0])) if digits else DATAFLOW_DEFAULT_VCPUS[streaming]


def is_dataflow(options: PipelineOptions) -> bool:
    """True when the job runs on Dataflow: the launcher then submits it and returns."""
    return "Dataflow" in str(options.view_as(StandardOptions).runner or "")


# Dataflow's page "Use data sampling to observe pipeline data": exception sampling is on by default
# and writes the failing element (here an event: emails, IPs) to --temp_location; this turns it off.
EXCEPTION_SAMPLING_OFF = "disable_always_on_exception_sampling"
EXCEPTION_SAMPLING_ON = "enable_always_on_exception_sampling"  # a user's explicit choice, kept


def apply_dataflow_defaults(options: PipelineOptions, job: JobSettings) -> None:
    """On Dataflow: no exception sampling of events, and the workers' logs at ``--log_level``.

    The workers' loggers follow ``--default_sdk_harness_log_level`` (and per-logger
    ``--sdk_harness_log_level_overrides``), not the launcher's: the job's own loggers get
    ``--log_level``, the rest INFO at most, since Beam's DEBUG lines print whole elements.
    Options given on the command line are kept.
    """
    from apache_beam.options.pipeline_options import DebugOptions, WorkerOptions

    if not is_dataflow(options):
        return
    debug = options.view_as(DebugOptions)
    if EXCEPTION_SAMPLING_ON not in (debug.experiments or []):
        debug.add_experiment(EXCEPTION_SAMPLING_OFF)
    workers = options.view_as(WorkerOptions)
    if workers.default_sdk_harness_log_level is None:
        workers.default_sdk_harness_log_level = "INFO" if job.log_level == "DEBUG" else job.log_level
    own_loggers = {"pipeline": job.log_level, "transforms": job.log_level}
    workers.sdk_harness_log_level_overrides = own_loggers | (workers.sdk_harness_log_level_overrides or {})


def check_dataflow_outputs(options: PipelineOptions, job: JobSettings) -> None:
    """On Dataflow, refuse outputs that would land on a worker's disk and vanish, or never be written."""
    if not is_dataflow(options):
        return
    if not (job.dead_letter.startswith("gs://") or job.dead_letter.startswith("projects/")):
        raise OptionsError(f"--dead_letter {job.dead_letter} is a local path, which on Dataflow is a worker's disk: "
                           "give a gs:// folder (or, streaming, a Pub/Sub topic)")
    if job.dry_run and not job.dry_run.startswith("gs://"):
        raise OptionsError(f"--dry_run_output {job.dry_run} is a local path, which on Dataflow is a worker's disk: "
                           "give a gs:// folder")
    if job.ledger and not job.ledger.startswith("gs://"):
        raise OptionsError(f"--ledger {job.ledger} is a local path, which on Dataflow is each worker's own disk: "
                           "give a gs:// folder")
    for option, value in (("--summary", job.summary), ("--report", job.report)):
        if value:
            raise OptionsError(f"{option} is written when a local job ends; on Dataflow the launcher returns once "
                               "the job is submitted: read the job's counters in the Dataflow console")
