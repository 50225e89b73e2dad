"""The job's entry point: ``python -m pipeline`` / ``woopra-pipeline``."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from pipeline import progress
from pipeline.config import ConfigError
from pipeline.graph import build_pipeline
from pipeline.options import (
    JobSettings,
    OptionsError,
    expand_runner_config,
    resolve_settings,
    take_dry_run,
    unknown_flags,
    with_default_runner,
)
from pipeline.report import clear_counts, write_run_report
from pipeline.summary import build_summary, counters_from_result, format_summary, write_summary
from transforms.counters import process_tally

log = logging.getLogger("pipeline")
JOB_LOGGERS = ("pipeline", "transforms")


def parse_command_line(argv: Sequence[str]) -> tuple[PipelineOptions, JobSettings]:
    """Runner config + flags → validated options; raises OptionsError/ConfigError."""
    flags, dry_run = take_dry_run(with_default_runner(expand_runner_config(argv)))
    unknown = unknown_flags(flags)
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise OptionsError(f"unknown option {unknown[0]}{more}")
    options = PipelineOptions(flags)
    return options, resolve_settings(options, dry_run)


def run(argv: Sequence[str]) -> int:
    """Validate, build, run and summarise one job; returns the process exit code."""
    try:
        options, job = parse_command_line(argv)
    except (OptionsError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(job.log_level)
    # Dead letters and dry-run files carry emails, IPs and cookies: owner-only (SPEC §9).
    os.umask(0o077)
    started = time.monotonic()
    if job.report:
        clear_counts(job.report)  # a previous run's report counts must not add to this one's
    pipeline = build_pipeline(beam.Pipeline(options=options), job)
    result = pipeline.run()
    if job.streaming:
        return follow_streaming_job(result, options, job, started)
    result.wait_until_finish()
    summary = build_summary(counters_from_result(result), bool(job.dry_run), time.monotonic() - started)
    print(format_summary(summary))
    if job.summary:
        write_summary(summary, job.summary)
    if job.report:
        write_run_report(job, summary)
        print(f"report: {job.report}")
    if not summary["balanced"]:
        print("error: the summary does not add up; please report this as a bug", file=sys.stderr)
        return 1
    return 0


def follow_streaming_job(result, options: PipelineOptions, job: JobSettings, started: float) -> int:  # type: ignore[no-untyped-def]
    """Log progress until the job ends; SIGINT/SIGTERM cancel it and print the counts so far.

    On Dataflow the launcher returns at once (a Flex Template launcher must not block): the
    counters are in the job's console.
    """
    if "Dataflow" in str(options.view_as(StandardOptions).runner):
        print(f"streaming job submitted: {getattr(result, 'job_id', lambda: '?')()}")
        return 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log.info("streaming job started; it runs until cancelled (Ctrl-C)")
    # Local runners run the DoFns in this process: read its tally (see transforms/counters.py).
    counts = progress.watch(result, job.progress_interval_seconds, stop, process_tally)
    if not PipelineState.is_terminal(result.state):
        result.cancel()
    summary = build_summary(counts, bool(job.dry_run), time.monotonic() - started)
    print(format_summary(summary))
    if job.summary:
        write_summary(summary, job.summary)
    return 0


def configure_logging(level_name: str) -> None:
    """Set the job's own loggers to ``--log_level``; at DEBUG the root logger too.

    Beam's INFO lines are many and say little to a user, so below DEBUG other libraries stay at
    WARNING (or at ERROR when that is asked for).
    """
    level = logging.getLevelName(level_name)
    for name in JOB_LOGGERS:
        logging.getLogger(name).setLevel(level)
    logging.getLogger().setLevel(logging.DEBUG if level == logging.DEBUG else max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_logging("INFO")  # until the command line says otherwise
    sys.exit(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
