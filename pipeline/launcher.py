"""The job's entry point: ``python -m pipeline`` / ``woopra-pipeline``."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

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
from pipeline.summary import build_summary, counters_from_result, format_summary, write_summary

log = logging.getLogger("pipeline")


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
    # Dead letters and dry-run files carry emails, IPs and cookies: owner-only (SPEC §9).
    os.umask(0o077)
    started = time.monotonic()
    pipeline = build_pipeline(beam.Pipeline(options=options), job)
    result = pipeline.run()
    if job.streaming:
        log.info("streaming job started; it runs until cancelled")
        result.wait_until_finish()
        return 0
    result.wait_until_finish()
    summary = build_summary(counters_from_result(result), bool(job.dry_run), time.monotonic() - started)
    print(format_summary(summary))
    if job.summary:
        write_summary(summary, job.summary)
    if not summary["balanced"]:
        print("error: the summary does not add up; please report this as a bug", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
