"""Command-line options (SPEC §6), runner configs, and their validation into a ``JobSettings``.

Numbers are declared as strings and converted here, so that a bad value gets one line naming
the option instead of argparse's usage dump.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.config import IntegrationConfig, load_config
from transforms.consent import ConsentPolicy
from transforms.dead_letters import DEAD_LETTER_REASONS
from transforms.deliver import DeliverySettings
from transforms.retry import RetryPolicy
from transforms.woopra_mapping import (
    DEFAULT_APP,
    DEFAULT_ENDPOINT,
    DEFAULT_TIMEOUT_MS,
    PRESET_EVENTS,
    PRESET_PROPERTY_RENAMES,
    WoopraSettings,
)

RUNNER_CONFIG_DIR = Path(__file__).resolve().parent.parent / "runner_configs"
# Beam's DirectRunner first tries to download the Prism runner, which fails without internet
# and is slow with it; these two local runners need nothing from outside.
DEFAULT_BATCH_RUNNER = "FnApiRunner"
DEFAULT_STREAMING_RUNNER = "BundleBasedDirectRunner"


class OptionsError(ValueError):
    """A bad command line or runner config; the message is one line naming the option."""


class WoopraOptions(PipelineOptions):
    """The pipeline's own options; every standard Beam option works beside them."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        add = parser.add_argument
        add("--input", help="Glob(s) of event files, comma-separated: .jsonl/.ndjson/.json[.gz], .parquet.")
        add("--input_subscription", help="Pub/Sub subscription projects/P/subscriptions/S (streaming).")
        add("--input_topic", help="Pub/Sub topic projects/P/topics/T (streaming; a temporary subscription).")
        add("--woopra_project", help="Woopra project domain, e.g. mywebsite.com (or 'project' in --config).")
        add("--woopra_endpoint", help=f"Tracking API base URL (default {DEFAULT_ENDPOINT}).")
        add("--woopra_timeout", help=f"Visit idle timeout in ms (default {DEFAULT_TIMEOUT_MS}).")
        add("--config", help="Mapping config file, YAML or JSON (SPEC §4).")
        add("--consent_categories", help="Comma-separated categories that must be granted (default analytics).")
        add("--consent_default", help="deny (default) or allow, for events without consent information.")
        add("--identity_ttl_days", default="30", help="Forget a visitor's traits after this many idle days.")
        add("--rate_limit", default="100", help="Requests per second for the whole job (default 100).")
        add("--max_in_flight", default="32", help="Concurrent requests per worker (default 32).")
        add("--max_attempts", default="5", help="Attempts per request, first one included (default 5).")
        add("--max_retry_seconds", default="600", help="Give up retrying after this long (default 600).")
        add("--request_timeout", default="10", help="Seconds before one request times out (default 10).")
        # --dry_run PATH is taken off the command line before Beam sees it (see take_dry_run):
        # Beam's own TestOptions has a --dry_run that stops Dataflow from submitting the job.
        add("--dead_letter", default="dead_letter/", help="Dead-letter path prefix (default dead_letter/).")
        add("--summary", help="Also write the end-of-run summary as JSON to this file.")
        add("--runner_config", help="YAML file of option defaults (see runner_configs/); flags win.")
        add("--rate_limiter_address", help="host:port of an Envoy Rate Limit Service: one limit for the job.")
        add("--rate_limiter_domain", default="woopra", help="Envoy RLS domain (descriptor woopra_project=P).")
        add("--delivery_process", default="on",
            help="on (default): send from a child process, on a core of its own; off: in the worker.")
        add("--rate_limit_processes",
            help="Worker processes sharing --rate_limit (each gets an equal share); default: the local "
                 "runner's process count, or --max_num_workers/--num_workers on Dataflow.")
        add("--timestamp_attribute", help="Pub/Sub attribute holding the event time (Beam's source).")
        add("--id_label", help="Pub/Sub attribute with a unique id to deduplicate on (Dataflow only).")
        add("--dead_letter_window_seconds", default="60",
            help="Streaming: one dead-letter (and dry-run) file per window of this many seconds.")
        add("--progress_interval_seconds", default="60",
            help="Streaming: log a one-line progress report this often (local runners).")
        # Operator tools (issue 5).
        add("--replay_reasons",
            help="Replaying dead letters: only records of these comma-separated reasons; others are "
                 "counted skipped_replay.")
        add("--report", help="Batch: also write a self-contained HTML run report to this file.")
        add("--log_level", default="INFO",
            help="DEBUG, INFO (default), WARNING or ERROR for the job's own logs; DEBUG shows Beam's too.")


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


def _flag_name(key: str) -> str:
    return "--" + key.lstrip("-").replace("-", "_")


def runner_config_flags(path: str) -> list[str]:
    """The flags a runner config YAML file stands for (``key: value`` → ``--key=value``)."""
    file = Path(path)
    if not file.exists() and (RUNNER_CONFIG_DIR / path).exists():
        file = RUNNER_CONFIG_DIR / path
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OptionsError(f"--runner_config: cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise OptionsError(f"--runner_config: {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if document is None:
        return []
    if not isinstance(document, dict):
        raise OptionsError(f"--runner_config: {path} must be a mapping of option: value")
    flags: list[str] = []
    for key, value in document.items():
        name = _flag_name(str(key))
        if name == "--runner_config":
            raise OptionsError(f"--runner_config: {path} cannot name another runner_config")
        if value is None or value is False:
            continue
        if value is True:
            flags.append(name)
        elif isinstance(value, list):
            flags.extend(f"{name}={item}" for item in value)
        else:
            flags.append(f"{name}={value}")
    return flags


def expand_runner_config(argv: Sequence[str]) -> list[str]:
    """Put the runner config's flags before the command line's, so command-line flags win."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--runner_config":
            if i + 1 >= len(argv):
                raise OptionsError("--runner_config needs a file name")
            return runner_config_flags(argv[i + 1]) + argv
        if arg.startswith("--runner_config="):
            return runner_config_flags(arg.split("=", 1)[1]) + argv
    return argv


def take_dry_run(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """Remove ``--dry_run PATH`` from the flags and return it; the last one given wins."""
    rest: list[str] = []
    path: str | None = None
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--dry_run":
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise OptionsError("--dry_run needs a path prefix for the request files")
            path = args[i + 1]
            i += 2
            continue
        if arg.startswith("--dry_run="):
            path = arg.split("=", 1)[1]
            if not path:
                raise OptionsError("--dry_run needs a path prefix for the request files")
        else:
            rest.append(arg)
        i += 1
    return rest, path


def unknown_flags(argv: Sequence[str]) -> list[str]:
    """Flags no registered PipelineOptions class knows (typos would otherwise be ignored)."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    seen: set[type] = set()
    pending = list(PipelineOptions.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        pending.extend(cls.__subclasses__())
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(argv))
    return [arg.split("=", 1)[0] for arg in unknown if arg.startswith("--")]


def with_default_runner(argv: Sequence[str]) -> list[str]:
    """Pin a local runner that works offline when the command line names none."""
    argv = list(argv)
    if any(a == "--runner" or a.startswith("--runner=") for a in argv):
        return argv
    streaming = any(a == "--streaming" or a == "--streaming=true" for a in argv)
    return argv + [f"--runner={DEFAULT_STREAMING_RUNNER if streaming else DEFAULT_BATCH_RUNNER}"]


def _number(option: str, value: Any, kind: type, minimum: float, maximum: float = math.inf) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise OptionsError(f"--{option} must be a {'whole ' if kind is int else ''}number, got {value!r}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise OptionsError(f"--{option} must be a finite number, got {value!r}")
    if not minimum <= number <= maximum:
        upper = "" if maximum == math.inf else f" and at most {maximum:g}"
        raise OptionsError(f"--{option} must be at least {minimum:g}{upper}, got {value!r}")
    return number


def validate_endpoint(url: str) -> str:
    """An https:// URL, or http(s) to a loopback host for local testing (SPEC §9)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionsError(f"--woopra_endpoint must be an http(s) URL with a host, got {url!r}")
    if parts.query or parts.fragment:
        raise OptionsError(f"--woopra_endpoint must not carry a query or fragment, got {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise OptionsError(f"--woopra_endpoint must use https:// unless its host is loopback, got {url!r}")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _source(options: WoopraOptions) -> tuple[str, str]:
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


def resolve_settings(options: PipelineOptions, dry_run: str | None = None) -> JobSettings:
    """Validate the options (and the config file they name) into ``JobSettings``."""
    opts = options.view_as(WoopraOptions)
    streaming = bool(options.view_as(StandardOptions).streaming)
    source_kind, source = _source(opts)
    if source_kind != "files" and not streaming:
        raise OptionsError(f"--input_{source_kind} reads Pub/Sub, which needs --streaming")
    config = load_config(opts.config) if opts.config else IntegrationConfig()

    project = opts.woopra_project or config.project
    if not project or not project.strip():
        raise OptionsError("--woopra_project is required (or 'project' in the --config file)")
    timeout_ms = (_number("woopra_timeout", opts.woopra_timeout, int, 1) if opts.woopra_timeout
                  else config.timeout or DEFAULT_TIMEOUT_MS)
    events = dict(PRESET_EVENTS)
    events.update(config.events)
    properties = dict(PRESET_PROPERTY_RENAMES)
    properties.update(config.properties)
    woopra = WoopraSettings(
        project=project.strip(),
        endpoint=validate_endpoint(opts.woopra_endpoint or DEFAULT_ENDPOINT),
        timeout_ms=timeout_ms,
        app=config.app or DEFAULT_APP,
        events=events,
        unmapped_events=config.unmapped_events or "send",
        property_renames=properties,
        trait_renames=dict(config.traits),
    )

    consent_default = opts.consent_default or config.consent_default or "deny"
    if consent_default not in ("deny", "allow"):
        raise OptionsError(f"--consent_default must be deny or allow, got {consent_default!r}")
    categories = (_categories(opts.consent_categories) if opts.consent_categories
                  else config.consent_categories or ("analytics",))

    rate_limit = _number("rate_limit", opts.rate_limit, float, 0.001, 1_000_000)
    processes = (_number("rate_limit_processes", opts.rate_limit_processes, int, 1, 100_000)
                 if opts.rate_limit_processes else worker_processes(options))
    address = opts.rate_limiter_address or None
    if address and (":" not in address or not address.rsplit(":", 1)[1].isdigit()):
        raise OptionsError(f"--rate_limiter_address must be host:port, got {address!r}")
    delivery = DeliverySettings(
        rate_limit=rate_limit / processes,
        separate_process=_on_off("delivery_process", opts.delivery_process),
        rate_limiter_address=address,
        rate_limiter_domain=opts.rate_limiter_domain or "woopra",
        project=project.strip(),
        max_in_flight=_number("max_in_flight", opts.max_in_flight, int, 1, 1024),
        request_timeout=_number("request_timeout", opts.request_timeout, float, 0.1, 3600),
        retry=RetryPolicy(
            max_attempts=_number("max_attempts", opts.max_attempts, int, 1, 100),
            max_retry_seconds=_number("max_retry_seconds", opts.max_retry_seconds, float, 0, 86_400),
        ),
    )
    dead_letter = opts.dead_letter or "dead_letter/"
    if dead_letter.startswith("projects/"):
        _check_pubsub_path("--dead_letter", dead_letter, "topics")
    if dead_letter.startswith("projects/") and not streaming:
        raise OptionsError("--dead_letter to a Pub/Sub topic needs --streaming (batch writes files)")
    if (opts.timestamp_attribute or opts.id_label) and source_kind == "files":
        raise OptionsError("--timestamp_attribute and --id_label apply to Pub/Sub sources only")
    runner = str(options.view_as(StandardOptions).runner or "")
    if opts.id_label and "Dataflow" not in runner:
        raise OptionsError(f"--id_label needs --runner=DataflowRunner: {runner or 'this runner'} cannot "
                           "deduplicate Pub/Sub reads (Beam's DirectRunner rejects id_label)")
    window_seconds = _number("dead_letter_window_seconds", opts.dead_letter_window_seconds, float, 1, 86_400)
    return JobSettings(
        source_kind=source_kind,
        source=source,
        streaming=streaming,
        woopra=woopra,
        consent=ConsentPolicy(required=categories, default=consent_default),
        delivery=delivery,
        identity_ttl_days=_number("identity_ttl_days", opts.identity_ttl_days, float, 0.001, 36_500),
        dead_letter=dead_letter,
        dry_run=dry_run,
        summary=opts.summary or None,
        timestamp_attribute=opts.timestamp_attribute or None,
        id_label=opts.id_label or None,
        file_window_seconds=window_seconds if streaming else None,
        progress_interval_seconds=_number("progress_interval_seconds", opts.progress_interval_seconds,
                                          float, 1, 86_400),
        replay_reasons=_replay_reasons(opts.replay_reasons) if opts.replay_reasons is not None else None,
        report=_report_path(opts.report, streaming),
        log_level=_log_level(opts.log_level),
    )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(value: str | None) -> str:
    """``--log_level``: one of LOG_LEVELS, any case."""
    level = str(value or "INFO").strip().upper()
    if level not in LOG_LEVELS:
        raise OptionsError(f"--log_level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _replay_reasons(value: str) -> tuple[str, ...]:
    """``--replay_reasons a,b``: known dead-letter reasons (SPEC §7), at least one."""
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


def worker_processes(options: PipelineOptions) -> int:
    """How many worker processes share the job's rate limit, each with its own token bucket.

    The DirectRunner's multi-processing mode runs ``direct_num_workers`` processes. On Dataflow
    it is the workers the job may have (``--max_num_workers``, else ``--num_workers``): one SDK
    process each, which is right for one-vCPU machines; with N vCPUs per worker give
    ``--rate_limit_processes`` = workers × N, or use an Envoy RLS for one exact global limit.
    """
    from apache_beam.options.pipeline_options import DirectOptions, WorkerOptions

    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode == "multi_processing":
        return max(1, int(direct.direct_num_workers or os.cpu_count() or 1))
    if "Dataflow" in str(options.view_as(StandardOptions).runner):
        workers = options.view_as(WorkerOptions)
        return max(1, int(workers.max_num_workers or workers.num_workers or 1))
    return 1
