"""The options checked into a ``JobSettings``: everything the graph needs, validated.

Each check names its option in one line (an ``OptionsError``) before anything is read.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.config import IntegrationConfig, load_config
from pipeline.dataflow_rules import check_dataflow_rate_limit_holds, is_dataflow, worker_processes
from pipeline.import_settings import ImportSettings, import_settings
from pipeline.options import LOG_LEVELS, OptionsError, WoopraOptions, number_option, validate_endpoint
from transforms.delivery.ledger import LedgerError, delivered_files
from transforms.delivery.retry import RetryPolicy
from transforms.delivery.settings import DeliverySettings
from transforms.file_output import new_run_id
from transforms.read_events import SUPPORTED_INPUTS, event_files, is_folder, is_supported_input
from transforms.rules.consent import ConsentPolicy
from transforms.rules.dead_letters import DEAD_LETTER_REASONS
from transforms.rules.time_range import TimeRange, parse_utc_time
from transforms.rules.woopra_mapping import (
    DEFAULT_APP,
    DEFAULT_ENDPOINT,
    DEFAULT_TIMEOUT_MS,
    PRESET_EVENTS,
    PRESET_PROPERTY_RENAMES,
    WoopraSettings,
)

log = logging.getLogger("pipeline.job_settings")


@dataclass(frozen=True)
class JobSettings:
    """Everything the graph needs, validated."""

    source_kind: str  # files | subscription | topic
    source: str
    streaming: bool
    woopra: WoopraSettings
    consent: ConsentPolicy
    delivery: DeliverySettings
    identity_ttl_days: float
    dead_letter: str
    dry_run: str | None
    summary: str | None
    timestamp_attribute: str | None = None
    id_label: str | None = None
    file_window_seconds: float | None = None  # streaming file outputs are windowed
    progress_interval_seconds: float = 60.0
    replay_reasons: tuple[str, ...] | None = None  # None: replay every dead letter in the input
    report: str | None = None  # HTML run report path (batch)
    log_level: str = "INFO"
    time_range: TimeRange = TimeRange()  # --start/--end; unbounded: every event time
    ledger: str | None = None  # --ledger folder
    dedup_window_seconds: float = 600.0
    identity_join: str = "side_input"  # side_input | shuffle
    imports: ImportSettings | None = None  # --sink import; None: the tracking API (--sink track)
    # Names this run's output files, so that no run replaces another's (transforms/file_output.py).
    run_id: str = field(default_factory=new_run_id)


def _source(options: WoopraOptions, streaming: bool) -> tuple[str, str]:
    """Exactly one source: files, or (streaming) a Pub/Sub subscription or topic."""
    given = [(kind, value) for kind, value in (
        ("files", options.input),
        ("subscription", options.input_subscription),
        ("topic", options.input_topic),
    ) if value]
    if len(given) != 1:
        raise OptionsError(
            "give exactly one of --input, --input_subscription, --input_topic"
            + (f" (got {len(given)})" if given else ""))
    kind, value = given[0]
    if kind == "subscription":
        _check_pubsub_path("--input_subscription", value, "subscriptions")
    if kind == "topic":
        _check_pubsub_path("--input_topic", value, "topics")
    if kind != "files" and not streaming:
        raise OptionsError(f"--input_{kind} reads Pub/Sub, which needs --streaming")
    return kind, value


def _check_pubsub_path(option: str, path: str, collection: str) -> None:
    """Check a Pub/Sub resource path the way Beam's Pub/Sub IO will, but as one line."""
    from apache_beam.io.gcp.pubsub import parse_subscription, parse_topic

    if not _is_resource(path, collection):
        raise OptionsError(f"{option} must be projects/P/{collection}/NAME, got {path!r}")
    try:
        (parse_topic if collection == "topics" else parse_subscription)(path)
    except ValueError as exc:
        raise OptionsError(f"{option}: {exc}") from None


def _is_resource(path: str, collection: str) -> bool:
    parts = path.split("/")
    return len(parts) == 4 and parts[0] == "projects" and parts[2] == collection and all(parts)


def _on_off(option: str, value: str) -> bool:
    if str(value).lower() not in ("on", "off"):
        raise OptionsError(f"--{option} must be on or off, got {value!r}")
    return str(value).lower() == "on"


def _categories(value: str) -> tuple[str, ...]:
    categories = tuple(c.strip().lower() for c in value.split(",") if c.strip())
    if not categories:
        raise OptionsError("--consent_categories must name at least one category")
    return categories


def resolve_settings(options: PipelineOptions) -> JobSettings:
    """Validate the options (and the config file they name) into ``JobSettings``."""
    opts = options.view_as(WoopraOptions)
    streaming = bool(options.view_as(StandardOptions).streaming)
    source_kind, source = _source(opts, streaming)
    _check_pubsub_only_options(opts, source_kind, str(options.view_as(StandardOptions).runner or ""))
    config = load_config(opts.config) if opts.config else IntegrationConfig()
    woopra = _woopra_settings(opts, config)
    return JobSettings(
        source_kind=source_kind,
        source=source,
        streaming=streaming,
        woopra=woopra,
        consent=_consent_policy(opts, config),
        delivery=_delivery_settings(opts, options, woopra.project),
        identity_ttl_days=number_option(opts, "identity_ttl_days"),
        dead_letter=_dead_letter_path(opts.dead_letter or "dead_letter/", streaming),
        dry_run=opts.dry_run_output or None,
        summary=opts.summary or None,
        timestamp_attribute=opts.timestamp_attribute or None,
        id_label=opts.id_label or None,
        file_window_seconds=number_option(opts, "dead_letter_window_seconds") if streaming else None,
        progress_interval_seconds=number_option(opts, "progress_interval_seconds"),
        replay_reasons=_replay_reasons(opts.replay_reasons) if opts.replay_reasons is not None else None,
        report=_report_path(opts.report, streaming),
        log_level=_log_level(opts.log_level),
        time_range=_time_range(opts.start, opts.end),
        ledger=_ledger_path(opts.ledger),
        dedup_window_seconds=number_option(opts, "dedup_window"),
        identity_join=_identity_join(opts.identity_join, options),
        imports=import_settings(opts, options, woopra.project, streaming),
    )


def _woopra_settings(opts: WoopraOptions, config: IntegrationConfig) -> WoopraSettings:
    """Project, endpoint, timeout and the field mappings: the flags over the config file."""
    project = opts.woopra_project or config.project
    if not project or not project.strip():
        raise OptionsError("--woopra_project is required (or 'project' in the --config file)")
    events = dict(PRESET_EVENTS)
    events.update(config.events)
    properties = dict(PRESET_PROPERTY_RENAMES)
    properties.update(config.properties)
    return WoopraSettings(
        project=project.strip(),
        endpoint=validate_endpoint(opts.woopra_endpoint or DEFAULT_ENDPOINT),
        timeout_ms=(number_option(opts, "woopra_timeout") if opts.woopra_timeout
                    else config.timeout or DEFAULT_TIMEOUT_MS),
        app=config.app or DEFAULT_APP,
        events=events,
        unmapped_events=config.unmapped_events or "send",
        property_renames=properties,
        trait_renames=dict(config.traits),
    )


def _consent_policy(opts: WoopraOptions, config: IntegrationConfig) -> ConsentPolicy:
    """The categories to require and the default: the flags over the config file."""
    consent_default = opts.consent_default or config.consent_default or "deny"
    if consent_default not in ("deny", "allow"):
        raise OptionsError(f"--consent_default must be deny or allow, got {consent_default!r}")
    categories = (_categories(opts.consent_categories) if opts.consent_categories
                  else config.consent_categories or ("analytics",))
    return ConsentPolicy(required=categories, default=consent_default)


def _delivery_settings(opts: WoopraOptions, options: PipelineOptions, project: str) -> DeliverySettings:
    """How each worker process sends: its share of the job's rate, concurrency, retries."""
    address = opts.rate_limiter_address or None
    if address and (":" not in address or not address.rsplit(":", 1)[1].isdigit()):
        raise OptionsError(f"--rate_limiter_address must be host:port, got {address!r}")
    processes = (number_option(opts, "rate_limit_processes") if opts.rate_limit_processes
                 else worker_processes(options))
    if is_dataflow(options) and not address:
        check_dataflow_rate_limit_holds(options, processes)
    return DeliverySettings(
        rate_limit=number_option(opts, "rate_limit") / processes,
        spread_over_workers=processes > 1 or is_dataflow(options),
        separate_process=_on_off("delivery_process", opts.delivery_process or default_delivery_process(options)),
        rate_limiter_address=address,
        rate_limiter_domain=opts.rate_limiter_domain or "woopra",
        project=project,
        max_in_flight=number_option(opts, "max_in_flight"),
        request_timeout=number_option(opts, "request_timeout"),
        retry=RetryPolicy(
            max_attempts=number_option(opts, "max_attempts"),
            max_retry_seconds=number_option(opts, "max_retry_seconds"),
        ),
    )


def default_delivery_process(options: PipelineOptions) -> str:
    """``--delivery_process`` when not given: off on Dataflow, on elsewhere.

    The child process gives HTTP a core of its own on a machine where one SDK process leaves a
    core idle (measured on 2 cores, BENCHMARKS.md benchmark 1). Dataflow runs one SDK process per
    vCPU, so a child would share its parent's core; no measurement on Dataflow says it helps.
    """
    return "off" if is_dataflow(options) else "on"


def _dead_letter_path(dead_letter: str, streaming: bool) -> str:
    """A path prefix, or (streaming only) a Pub/Sub topic."""
    if dead_letter.startswith("projects/"):
        _check_pubsub_path("--dead_letter", dead_letter, "topics")
        if not streaming:
            raise OptionsError("--dead_letter to a Pub/Sub topic needs --streaming (batch writes files)")
    return dead_letter


def _check_pubsub_only_options(opts: WoopraOptions, source_kind: str, runner: str) -> None:
    if (opts.timestamp_attribute or opts.id_label) and source_kind == "files":
        raise OptionsError("--timestamp_attribute and --id_label apply to Pub/Sub sources only")
    if opts.id_label and "Dataflow" not in runner:
        raise OptionsError(f"--id_label needs --runner=DataflowRunner: {runner or 'this runner'} cannot "
                           "deduplicate Pub/Sub reads (Beam's DirectRunner rejects id_label)")


def _time_range(start: str | None, end: str | None) -> TimeRange:
    """``--start`` / ``--end``: ISO 8601 UTC dates or date-times, start before end."""
    bounds = []
    for option, value in (("--start", start), ("--end", end)):
        try:
            bounds.append(parse_utc_time(value) if value else None)
        except ValueError as exc:
            raise OptionsError(f"{option}: {exc}") from None
    try:
        return TimeRange(*bounds)
    except ValueError as exc:
        raise OptionsError(f"{exc}, got --start {start} and --end {end}") from None


def _ledger_path(value: str | None) -> str | None:
    """``--ledger FOLDER``: a local folder (created if missing) or a gs:// prefix, not of an older format."""
    if not value:
        return None
    folder = value.rstrip("/") or "/"
    if "://" not in folder and os.path.exists(folder) and not os.path.isdir(folder):
        raise OptionsError(f"--ledger must be a folder, and {value} is a file")
    try:
        delivered_files(folder)
    except LedgerError as exc:
        raise OptionsError(f"--ledger: {exc}") from None
    return folder


# Runners that spread one job over processes or machines: the batch identity join goes through the shuffle.
DISTRIBUTED_RUNNERS = ("DataflowRunner", "PortableRunner", "FlinkRunner", "SparkRunner")


def _identity_join(value: str | None, options: PipelineOptions) -> str:
    """``--identity_join``: side_input or shuffle; auto picks by runner."""
    choice = str(value or "auto").strip().lower()
    if choice not in ("auto", "side_input", "shuffle"):
        raise OptionsError(f"--identity_join must be auto, side_input or shuffle, got {value!r}")
    if choice != "auto":
        return choice
    runner = str(options.view_as(StandardOptions).runner or "")
    return "shuffle" if any(name in runner for name in DISTRIBUTED_RUNNERS) else "side_input"


def _log_level(value: str | None) -> str:
    """``--log_level``: one of LOG_LEVELS, any case."""
    level = str(value or "INFO").strip().upper()
    if level not in LOG_LEVELS:
        raise OptionsError(f"--log_level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _replay_reasons(value: str) -> tuple[str, ...]:
    """``--replay_reasons a,b``: known dead-letter reasons (docs/behaviour.md#dead-letters), at least one."""
    reasons = tuple(dict.fromkeys(r.strip() for r in value.split(",") if r.strip()))
    if not reasons:
        raise OptionsError(f"--replay_reasons must name at least one of {', '.join(DEAD_LETTER_REASONS)}")
    unknown = [r for r in reasons if r not in DEAD_LETTER_REASONS]
    if unknown:
        raise OptionsError(f"--replay_reasons: unknown reason {unknown[0]!r} "
                           f"(known: {', '.join(DEAD_LETTER_REASONS)})")
    return reasons


def _report_path(value: str | None, streaming: bool) -> str | None:
    """``--report FILE``: batch only, since the page is written when the job has finished."""
    if not value:
        return None
    if streaming:
        raise OptionsError("--report is for batch runs (a streaming job never finishes); leave it out")
    return value


def expand_input(patterns: str) -> str:
    """Check local ``--input`` patterns before the graph is built; folders become their event files.

    A pattern matching nothing, or an explicitly named file the job cannot read, is a one-line
    error; a folder (or a pattern ending in ``/``) and a glob keep only the files whose names
    ``is_supported_input`` accepts, so ``--input samples/`` does not read ``mapping.yaml`` as
    events. Remote patterns (``gs://``) are left to Beam: matching them can wait minutes for
    credentials or network.
    """
    expanded: list[str] = []
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            continue
        if "://" in pattern and not pattern.startswith("file://"):
            expanded.append(pattern)
            continue
        folder = is_folder(pattern)
        glob = any(c in pattern for c in "*?[")
        if not folder and not glob and not is_supported_input(pattern):
            raise OptionsError(f"--input: {pattern} is not an event file; the job reads {SUPPORTED_INPUTS}")
        readable, matched = event_files(pattern)
        if not matched:
            what = "folder holds no files" if folder else "no file matches"
            raise OptionsError(f"--input {pattern}: {what}; check the path (globs need quotes in the shell)")
        if not readable:
            raise OptionsError(f"--input {pattern}: no event files among {matched} matched "
                               f"(the job reads {SUPPORTED_INPUTS})")
        if len(readable) < matched:
            log.info("--input %s: skipping %d file(s) that are not event files", pattern, matched - len(readable))
        expanded.extend(readable if folder or len(readable) < matched else [pattern])
    return ",".join(expanded)


PUBSUB_CREDENTIALS_HELP = ("export PUBSUB_EMULATOR_HOST=127.0.0.1:8085 after bash scripts/pubsub_emulator.sh start, "
                           "or run gcloud auth application-default login")


def check_pubsub_access(options: PipelineOptions, job: JobSettings) -> None:
    """Fail fast when a local job would read or write Pub/Sub with neither the emulator nor credentials.

    Without them Beam's Pub/Sub client retries in the background while the job reports read=0
    forever. Dataflow brings its own credentials, so it is not checked.
    """
    uses_pubsub = job.source_kind != "files" or job.dead_letter.startswith("projects/")
    runner = str(options.view_as(StandardOptions).runner or "")
    if not uses_pubsub or "Dataflow" in runner or os.environ.get("PUBSUB_EMULATOR_HOST"):
        return
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    # google-auth warns about each way it tried; the one line below says what to do instead.
    auth_log = logging.getLogger("google.auth")
    level = auth_log.level
    auth_log.setLevel(logging.ERROR)
    try:
        google.auth.default()
    except DefaultCredentialsError:
        raise OptionsError("Pub/Sub needs the emulator or Google credentials: "
                           f"{PUBSUB_CREDENTIALS_HELP}") from None
    finally:
        auth_log.setLevel(level)


