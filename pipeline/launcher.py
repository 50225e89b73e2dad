"""The job's entry point: ``python -m pipeline`` / ``woopra-pipeline``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from shlex import quote
from typing import Any, NoReturn

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineResult, PipelineState

from pipeline import exit_status, progress
from pipeline.command_line import (
    check_runner,
    check_runner_config_flags,
    check_unknown_flags,
    expand_runner_config,
    normalize_streaming,
    runner_config_path,
    take_dry_run,
    unknown_flags,
    with_default_runner,
)
from pipeline.config import ConfigError
from pipeline.dataflow_rules import apply_dataflow_defaults, check_dataflow_outputs, is_dataflow
from pipeline.direct_runner import speed_up_direct_runner
from pipeline.graph import build_pipeline
from pipeline.job_settings import JobSettings, check_pubsub_access, expand_input, resolve_settings
from pipeline.options import OptionsError, help_parser
from pipeline.plan import import_plan, plan_for_job
from pipeline.summary import DRY_RUN_KEY, build_summary, counters_from_result, format_summary, write_summary
from pipeline.tools.report import clear_counts, write_run_report
from transforms import interruption
from transforms.counters import process_tally
from transforms.file_output import file_prefix
from transforms.read_events import split_patterns
from transforms.rules.outcomes import Group, group_outcomes

log = logging.getLogger("pipeline")
JOB_LOGGERS = ("pipeline", "transforms")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CANCEL_WAIT_SECONDS = 3.0  # after Ctrl-C, how long the runner gets to cancel before the process leaves


def parse_command_line(argv: Sequence[str]) -> tuple[PipelineOptions, JobSettings]:
    """Runner config + flags → validated options; raises OptionsError/ConfigError.

    Everything a user can get wrong on the command line is checked here, before the graph is
    built, so that it is one line instead of a traceback from inside Beam.
    """
    command_line = take_dry_run(normalize_streaming(argv))
    check_unknown_flags(unknown_flags(command_line))
    config_path = runner_config_path(command_line)
    if config_path:
        check_runner_config_flags(config_path)
    # The runner config's flags go first and the command line's after, so the command line wins
    # (normalize_streaming keeps the last --streaming[=true|false]).
    flags = with_default_runner(normalize_streaming(take_dry_run(expand_runner_config(take_dry_run(argv)))))
    check_runner(flags)
    options = PipelineOptions(flags)
    job = resolve_settings(options)
    if job.source_kind == "files":
        job = dataclasses.replace(job, source=expand_input(job.source))
    check_pubsub_access(options, job)
    check_dataflow_outputs(options, job)
    apply_dataflow_defaults(options, job)
    return options, job


def print_help(argv: Sequence[str]) -> bool:
    """``--help``: the job's own options; ``--help-beam``: Beam's. False when neither was asked."""
    prog = "woopra-pipeline" if os.path.basename(sys.argv[0]).startswith("woopra-pipeline") else "python -m pipeline"
    if "--help-beam" in argv:
        def show_beam_help(parser: argparse.ArgumentParser) -> None:
            # Beam calls this with its parser of every registered option class.
            parser.prog = prog
            parser.print_help()

        PipelineOptions([]).get_all_options(add_extra_args_fn=show_beam_help)
        return True
    if "--help" in argv or "-h" in argv:
        help_parser(prog).print_help()
        print()
        print(exit_status.HELP)
        return True
    return False


def run(argv: Sequence[str]) -> int:
    """Validate, build, run and summarise one job; returns the process exit code."""
    if print_help(argv):
        return 0
    try:
        options, job = parse_command_line(argv)
    except (OptionsError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_status.USAGE
    configure_logging(job.log_level)
    log.debug("run %s: %s %s → %s, %s requests/s per process, %s in flight, dead letters to %s%s",
              job.run_id, job.source_kind, job.source, job.woopra.endpoint, f"{job.delivery.rate_limit:g}",
              job.delivery.max_in_flight, job.dead_letter, f", dry run to {job.dry_run}" if job.dry_run else "")
    # Dead letters and dry-run files carry emails, IPs and cookies: owner-only (docs/behaviour.md#dead-letters).
    os.umask(0o077)
    started = time.monotonic()
    if job.report:
        clear_counts(job.report)  # a previous run's report counts must not add to this one's
    pipeline = build_pipeline(beam.Pipeline(options=options), job)
    if is_dataflow(options):
        return report_submitted(pipeline.run(), options, job)
    if job.streaming:
        if "DirectRunner" in str(options.view_as(StandardOptions).runner or ""):
            speed_up_direct_runner()  # its per-bundle costs (pipeline/direct_runner.py)
        return follow_streaming_job(pipeline.run(), options, job, started)
    return run_batch(pipeline, options, job, started, argv)


def run_batch(pipeline: beam.Pipeline, options: PipelineOptions, job: JobSettings, started: float,
              argv: Sequence[str]) -> int:
    """Run a local batch job to its end, or until Ctrl-C/SIGTERM, then print and write its summary."""
    baseline = process_tally()
    with progress.batch_progress(options, job), StopOnSignal(options, job, started, baseline, argv) as stop:
        # A local runner's run() may block until the end: progress is logged from a thread meanwhile.
        result = pipeline.run()
        result.wait_until_finish()
    counts = counters_from_result(result)
    return finish(job, options, counts, time.monotonic() - started, interrupted=stop.signalled, argv=argv)


def finish(job: JobSettings, options: PipelineOptions | None, counts: dict[str, int], elapsed: float,
           interrupted: bool, argv: Sequence[str] = ()) -> int:
    """Print and write a batch run's summary (with every file it wrote); returns the exit status."""
    summary = build_summary(counts, bool(job.dry_run), elapsed, job.run_id, interrupted=interrupted)
    if interrupted:
        summary["input_read_to_the_end"] = not interruption.input_cut_short()
    summary["files"] = files_written(job)
    print(format_summary(summary))
    if summary["read"] == 0 and job.source_kind == "files" and not interrupted:
        print(nothing_read(job.source))
    if job.dry_run and options is not None and not interrupted:
        print(plan_for_job(summary[DRY_RUN_KEY], options, job) if job.imports is None else import_plan(summary, job))
    if job.summary:
        write_summary(summary, job.summary)
    if job.report:
        write_run_report(job, summary)
        print(f"report: {job.report}")
    if interrupted:
        print(resume_hint(job, summary, argv))
    status = exit_status.for_summary(summary)
    if status == exit_status.FAILED:
        print("error: the summary does not add up; please report this as a bug", file=sys.stderr)
    elif status == exit_status.NOTHING_DELIVERED:
        print(f"error: nothing was delivered (exit status {status}); the causes are above, the dead letters in "
              f"{job.dead_letter}", file=sys.stderr)
    return status


def nothing_read(patterns: str) -> str:
    """``read 0 events from 1 file (empty.jsonl)``: an empty input is said, not silent."""
    files = sorted({metadata.path for pattern in split_patterns(patterns)
                    for metadata in FileSystems.match([pattern])[0].metadata_list})
    names = ", ".join(os.path.relpath(path) if os.path.isabs(path) else path for path in files[:3])
    more = f" and {len(files) - 3} more" if len(files) > 3 else ""
    plural = "s" if len(files) != 1 else ""
    return f"read 0 events from {len(files)} file{plural}" + (f" ({names}{more})" if files else "")


def files_written(job: JobSettings) -> list[str]:
    """Every file of this run: dead letters, dry-run requests and ledger files (by run id), summary, report."""
    patterns = [file_prefix(job.dead_letter, "dead_letters", job.run_id) + "*"]
    if job.dry_run:
        patterns.append(file_prefix(job.dry_run, "requests", job.run_id) + "*")
    if job.ledger:
        patterns.append(FileSystems.join(job.ledger, f"delivered-{job.run_id}-*"))
    found: list[str] = []
    for pattern in patterns:
        try:
            found += sorted(metadata.path for metadata in FileSystems.match([pattern])[0].metadata_list)
        except Exception as exc:  # noqa: BLE001 - a listing that fails must not hide the summary
            log.info("could not list %s: %s", pattern, exc)
    here = os.getcwd()
    relative = [os.path.relpath(path) if os.path.isabs(path) and os.path.commonpath([path, here]) == here else path
                for path in found]
    return relative + [path for path in (job.summary, job.report) if path]


def resume_hint(job: JobSettings, summary: dict, argv: Sequence[str]) -> str:
    """How to send what an interrupted run did not: the same command, whose ``--ledger`` skips what was delivered."""
    command = " ".join(quote(arg) for arg in argv) if argv else "..."
    if job.dry_run:
        return "a dry run sends nothing: run the same command again for all of it"
    if job.ledger:
        return (f"to resume (what was delivered is in the ledger {job.ledger} and is skipped):\n"
                f"  python -m pipeline {command}")
    delivered = sum(int(summary.get(str(outcome), 0)) for outcome in group_outcomes(Group.SENT, dry_run=False))
    return (f"no --ledger was given, so a rerun would send the {delivered:,} events delivered again; "
            f"run with --ledger FOLDER to be able to resume with the same command")


class StopOnSignal:
    """Ctrl-C (SIGINT) and SIGTERM stop a local batch run: no new request is sent, the requests in
    flight get a few seconds, and the run ends with its summary (transforms/interruption.py).

    If the runner has not ended ``LAST_WAIT_SECONDS`` after the signal (or at a second signal),
    the summary is printed from this process's counts and the process leaves at once.
    """

    LAST_WAIT_SECONDS = 7.0

    def __init__(self, options: PipelineOptions, job: JobSettings, started: float,
                 baseline: dict[str, int], argv: Sequence[str]) -> None:
        self.job = job
        self.argv = argv
        self.started = started
        self.baseline = baseline
        self.in_process = progress.counts_in_this_process(options)
        self.signalled = False
        self.finished = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        interruption.reset()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finished.set()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.signalled or not self.in_process:
            self.leave_now(name)
        self.signalled = True
        interruption.request_stop()
        print(f"{name}: stopping: no new requests; waiting up to {interruption.GRACE_SECONDS:g} s for the answers "
              f"to those in flight, then writing the dead letters and the summary (again to leave at once)",
              file=sys.stderr, flush=True)
        threading.Thread(target=self._last_wait, args=(name,), name="stop-deadline", daemon=True).start()

    def _last_wait(self, name: str) -> None:
        if not self.finished.wait(self.LAST_WAIT_SECONDS):
            self.leave_now(name)

    def leave_now(self, name: str) -> None:
        """The summary from this process's counts, then exit with the interrupted status."""
        if not self.in_process:
            print(f"{name}: interrupted; the counts are in the runner's worker processes: no summary",
                  file=sys.stderr, flush=True)
            exit_now(exit_status.INTERRUPTED)
        print(f"{name}: not waiting for the runner to finish: the files it had not finished are not written",
              file=sys.stderr, flush=True)
        counts = progress.since(self.baseline, process_tally())
        exit_now(finish(self.job, None, counts, time.monotonic() - self.started, interrupted=True, argv=self.argv))


def report_submitted(result: PipelineResult, options: PipelineOptions, job: JobSettings) -> int:
    """Dataflow: print the job's id and console page, and return without waiting.

    A Flex Template launcher that waits for its job fails ("Timeout in polling result file"), and
    a batch backfill may run for hours: the counts are the job's counters in the console. A Flex
    Template launch passes ``--template_location``: Beam then writes the job there, for Dataflow to
    start, and its result has no job (docs/deploy.md, "What is tested").
    """
    kind = "streaming" if job.streaming else "batch"
    cloud = options.view_as(GoogleCloudOptions)
    if cloud.template_location:
        print(f"{kind} job for Dataflow written to {cloud.template_location} for Dataflow to start "
              f"(template launch); run {job.run_id}")
        return 0
    job_id = result.job_id() if getattr(result, "has_job", False) else None  # type: ignore[attr-defined]
    if not job_id:  # Beam's --dry_run: the job was built, not submitted
        print(f"{kind} job for Dataflow built but not submitted (dry run); run {job.run_id}")
        return 0
    print(f"{kind} job submitted to Dataflow: {job_id} (run {job.run_id})")
    print(f"console: https://console.cloud.google.com/dataflow/jobs/{cloud.region}/{job_id}?project={cloud.project}")
    return 0


def follow_streaming_job(result, options: PipelineOptions, job: JobSettings, started: float) -> int:  # type: ignore[no-untyped-def]
    """Log progress until the job ends; SIGINT/SIGTERM cancel it and print the counts so far.

    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log.info("streaming job started; it runs until cancelled (Ctrl-C)")
    # Local runners run the DoFns in this process: read its tally (see transforms/counters.py).
    counts = progress.watch(result, job.progress_interval_seconds, stop, process_tally)
    elapsed = time.monotonic() - started  # the run's wall time, not the runner's shutdown
    cancelled = threading.Thread(target=_cancel, args=(result,), name="cancel-job", daemon=True)
    cancelled.start()
    summary = build_summary(counts, bool(job.dry_run), elapsed, job.run_id)
    if summary["read"] > summary["accounted"]:  # events still on their way when it was stopped
        summary = build_summary(counts, bool(job.dry_run), elapsed, job.run_id, interrupted=True)
    print(format_summary(summary))
    if job.summary:
        write_summary(summary, job.summary)
    status = exit_status.for_summary(summary)
    cancelled.join(timeout=CANCEL_WAIT_SECONDS)
    if cancelled.is_alive():
        # The DirectRunner's cancel waits for its Pub/Sub pulls and worker threads (tens of seconds),
        # and its non-daemon threads would hold the process that long again at exit. The counts
        # are printed and the files written per window are closed, so leave without waiting.
        log.info("stopped; not waiting for the runner's threads to wind down")
        exit_now(status)
    return status


def _cancel(result) -> None:  # type: ignore[no-untyped-def]
    """Cancel a local streaming job unless it has already ended."""
    if not PipelineState.is_terminal(result.state):
        result.cancel()


def configure_logging(level_name: str) -> None:
    """Set the job's own loggers to ``--log_level``; at DEBUG the root logger too.

    Beam's INFO lines are many and say little to a user, so below DEBUG other libraries stay at
    WARNING (or at ERROR when that is asked for).
    """
    level = logging.getLevelName(level_name)
    for name in JOB_LOGGERS:
        logging.getLogger(name).setLevel(level)
    logging.getLogger().setLevel(logging.DEBUG if level == logging.DEBUG else max(level, logging.WARNING))
    # Beam's DEBUG lines print whole elements (events with emails and cookies): no log level may
    # show those (docs/behaviour.md, "Privacy"), so Beam stays at INFO at most.
    logging.getLogger("apache_beam").setLevel(logging.INFO if level == logging.DEBUG else max(level, logging.WARNING))
    # A run without dead letters writes no file, and Beam warns that it found none to finalize.
    logging.getLogger("apache_beam.io.filebasedsink").addFilter(_no_empty_output_warning)


def _no_empty_output_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("No shards found to finalize")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    # Beam asks whether it runs in an IPython session for every transform the graph applies, by
    # importing IPython: where IPython is installed (any machine with Jupyter) that import alone
    # costs about half a second at every start. A console run is not in an IPython session, and
    # the job does not use IPython, so that import is refused here (Beam then knows the answer).
    sys.modules.setdefault("IPython", None)  # type: ignore[arg-type]
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    configure_logging("INFO")  # until the command line says otherwise
    exit_now(run(sys.argv[1:] if argv is None else argv))


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` once the run is over, skipping the interpreter's teardown.

    Every file is written and closed by now, and the delivery process ends by itself when this
    one's end of its pipe closes; what is skipped is Python freeing Beam's modules and the run's
    objects one by one (about a second, BENCHMARKS.md, benchmark 1), and waiting for a runner's
    threads after Ctrl-C.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
