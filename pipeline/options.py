"""The job's own command-line options: their declarations, ``--help``, and reading numbers.

docs/options.md is generated from ``OPTION_GROUPS`` (``python -m pipeline.options_doc``). Numbers
are declared as strings and converted here, so that a bad value gets one line naming the option
instead of argparse's usage dump. Reading a command line: pipeline/command_line.py; checking the
options into a ``JobSettings``: pipeline/job_settings.py; Dataflow's rules: pipeline/dataflow_rules.py.
"""
from __future__ import annotations

import argparse
import ipaddress
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.delivery.call_budget import WOOPRA_LIMITS
from transforms.rules.import_visits import DEFAULT_IMPORT_ENDPOINT, DEFAULT_MAX_BYTES, DEFAULT_MAX_VISITS, MIN_MAX_BYTES
from transforms.rules.woopra_mapping import (
    DEFAULT_ENDPOINT,
    DEFAULT_TIMEOUT_MS,
)


class OptionsError(ValueError):
    """A bad command line or runner config; the message is one line naming the option."""


@dataclass(frozen=True)
class Number:
    """What a numeric option takes: whole or decimal, and its bounds."""

    kind: type[int] | type[float]
    minimum: float
    maximum: float = math.inf

    def parse(self, option: str, value: Any) -> Any:
        """``value`` as this number; OptionsError naming ``option`` when it is not one or out of bounds."""
        try:
            number = self.kind(value)
        except (TypeError, ValueError):
            whole = "whole " if self.kind is int else ""
            raise OptionsError(f"{option} must be a {whole}number, got {value!r}") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise OptionsError(f"{option} must be a finite number, got {value!r}")
        if not self.minimum <= number <= self.maximum:
            upper = "" if self.maximum == math.inf else f" and at most {self.maximum:g}"
            raise OptionsError(f"{option} must be at least {self.minimum:g}{upper}, got {value!r}")
        return number


@dataclass(frozen=True)
class Flag:
    """One of the job's own options: its name, help text, default (a string, as Beam gets it) and,
    for a number, what it takes."""

    name: str
    metavar: str
    help: str
    default: str | None = None
    number: Number | None = None

    def help_text(self) -> str:
        """The help text, ending with the default when there is one."""
        return self.help if self.default is None else f"{self.help} Default: {self.default}."


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DRY_RUN_ALIAS = "--dry_run"

# The job's options, grouped as ``--help`` shows them. Help texts are ours; docs/options.md has
# the same table.
OPTION_GROUPS: tuple[tuple[str, str, tuple[Flag, ...]], ...] = (
    ("Input", "Exactly one of --input (batch), --input_subscription or --input_topic (both with --streaming).", (
        Flag("--input", "PATHS", "Event files, comma-separated: files, globs or folders (local or gs://). "
                        "Read: .jsonl .ndjson .json (also .gz) and .parquet .parq; a folder reads those only."),
        Flag("--input_subscription", "SUBSCRIPTION", "Pub/Sub subscription projects/P/subscriptions/S."),
        Flag("--input_topic", "TOPIC", "Pub/Sub topic projects/P/topics/T, read through a temporary subscription."),
        Flag("--timestamp_attribute", "ATTR", "Pub/Sub attribute holding the event time (passed to Beam's source)."),
        Flag("--id_label", "ATTR", "Pub/Sub attribute with a unique id to deduplicate on (Dataflow only)."),
        Flag("--replay_reasons", "REASONS", "Replaying dead letters: only records of these comma-separated reasons; "
                                 "the others are counted skipped_replay."),
    )),
    ("Woopra", "", (
        Flag("--woopra_project", "DOMAIN", "Woopra project domain, e.g. mywebsite.com; required here or as 'project' "
                                 "in --config."),
        Flag("--woopra_endpoint", "URL", f"Tracking API base URL; http:// only to a loopback host. "
                                  f"Default: {DEFAULT_ENDPOINT}."),
        Flag("--woopra_timeout", "MS", f"Visit idle timeout in ms. Default: 'timeout' in --config, else "
                                 f"{DEFAULT_TIMEOUT_MS}.", number=Number(int, 1)),
        Flag("--config", "FILE", "Mapping config file, YAML or JSON: project, events, properties, traits "
                         "(docs/behaviour.md#config-file)."),
    )),
    ("Consent & identity", "", (
        Flag("--consent_categories", "A,B", "Comma-separated consent categories that must all be granted. "
                                     "Default: 'consent_categories' in --config, else analytics."),
        Flag("--consent_default", "deny|allow", "For events without consent information. Default: "
                                                "'consent_default' in --config, else deny."),
        Flag("--identity_ttl_days", "DAYS", "Forget a visitor's remembered traits after this many idle days.", "30",
             Number(float, 0.001, 36_500)),
    )),
    ("Backfill", "Each event once, slices of event time, resuming (docs/backfill.md).", (
        Flag("--start", "DATE", "Send only events at or after this UTC date or date-time (ISO 8601, e.g. "
                        "2024-03-01 or 2024-03-01T12:00:00Z); the others are counted out_of_range."),
        Flag("--end", "DATE", "Send only events before this UTC date or date-time (exclusive)."),
        Flag("--ledger", "FOLDER", "Folder (local or gs://) of the events Woopra accepted: a rerun skips them "
                           "(skipped_ledger) and sends the others."),
        Flag("--dedup_window", "SECONDS", "Streaming: drop copies of an event id seen this many seconds before "
                                  "(processing time), counted duplicate. Batch drops every later copy.", "600",
             Number(float, 0, 7 * 86_400)),
        Flag("--identity_join", "auto|side_input|shuffle", "Batch: side_input (each process holds every "
                                                       "timeline) or shuffle (memory independent of visitors); "
                                                       "auto: shuffle on distributed runners.", "auto"),
    )),
    ("Delivery", "", (
        Flag("--rate_limit", "N", "Requests per second for the whole job.", "100", Number(float, 0.001, 1_000_000)),
        Flag("--max_in_flight", "N", "Concurrent requests per worker process.", "32", Number(int, 1, 1024)),
        Flag("--max_attempts", "N", "Attempts per request, the first one included.", "5", Number(int, 1, 100)),
        Flag("--max_retry_seconds", "SECONDS", "Stop retrying a request after this many seconds.", "600",
             Number(float, 0, 86_400)),
        Flag("--request_timeout", "SECONDS", "Seconds before one request times out.", "10", Number(float, 0.1, 3600)),
        Flag("--rate_limiter_address", "HOST:PORT", "host:port of an Envoy Rate Limit Service: one exact limit for the "
                                       "job (then --rate_limit is not used)."),
        Flag("--rate_limiter_domain", "DOMAIN", "Envoy Rate Limit Service domain (descriptor woopra_project=P).",
             "woopra"),
        Flag("--rate_limit_processes", "N", "Worker processes sharing --rate_limit equally. Default: the local "
                                       "runner's; on Dataflow --num_workers × vCPUs.",
             number=Number(int, 1, 100_000)),
        Flag("--delivery_process", "on|off", "on: send from a child process, on a core of its own; off: from the "
                                   "worker itself. Default: on, but off on Dataflow (one SDK process per vCPU "
                                   "already uses every core)."),
    )),
    ("Import sink", "", (
        Flag("--sink", "track|import", "import: visits in bulk, batch only (docs/backfill.md).", "track"),
        Flag("--woopra_import_endpoint", "URL", f"Import API URL. Default: {DEFAULT_IMPORT_ENDPOINT}."),
        Flag("--woopra_credentials", "FILE", "JSON app_id, secret_key (local or gs://); else WOOPRA_APP_ID, "
                                     "WOOPRA_SECRET_KEY."),
        Flag("--import_max_bytes", "BYTES", "Largest body.", str(DEFAULT_MAX_BYTES),
             Number(int, MIN_MAX_BYTES, 100_000_000)),
        Flag("--import_max_visits", "N", "Visits per body.", str(DEFAULT_MAX_VISITS), Number(int, 1, 1_000_000)),
        Flag("--import_budget", "LIMITS", "Calls.", ",".join(limit.label().replace(",", "")
                                                                        for limit in WOOPRA_LIMITS)),
        Flag("--import_max_in_flight", "N", "Bodies at once per process.", "2", Number(int, 1, 64)),
    )),
    ("Outputs", "", (
        Flag("--dead_letter", "PATH", "Dead-letter path prefix (JSON-lines files), or a Pub/Sub topic "
                              "projects/P/topics/T when streaming.", "dead_letter/"),
        Flag("--dry_run_output", "PATH", f"Send nothing: write each request that would be sent as JSON lines under "
                                 f"this path prefix. {DRY_RUN_ALIAS} PATH is the same."),
        Flag("--summary", "FILE", "Also write the end-of-run summary as JSON to this file."),
        Flag("--report", "FILE", "Batch: also write a self-contained HTML run report to this file."),
        Flag("--dead_letter_window_seconds", "SECONDS",
             "Streaming: one dead-letter (and dry-run) file per window of this many seconds.", "60",
             Number(float, 1, 86_400)),
    )),
    ("Operator", "", (
        Flag("--runner_config", "FILE", "YAML file of option defaults (see runner_configs/); command-line flags win."),
        Flag("--log_level", "LEVEL", f"{', '.join(LOG_LEVELS)}: the job's own logs, on Dataflow's workers too; "
                            f"DEBUG shows other libraries' (Beam's) at INFO or above.", "INFO"),
        Flag("--progress_interval_seconds", "SECONDS", "Local runners: log a one-line progress report this often "
                                            "(batch: with the share of input read and an ETA).", "60",
             number=Number(float, 1, 86_400)),
    )),
)


class WoopraOptions(PipelineOptions):
    """The pipeline's own options (OPTION_GROUPS); every standard Beam option works beside them."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        for _, _, flags in OPTION_GROUPS:
            for flag in flags:
                parser.add_argument(flag.name, metavar=flag.metavar, default=flag.default, help=flag.help_text())


def help_parser(prog: str) -> argparse.ArgumentParser:
    """A plain argparse parser that shows the job's own options, grouped, for ``--help``."""
    parser = argparse.ArgumentParser(
        prog=prog, usage="%(prog)s [options]", add_help=False,
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=36),
        description="Deliver page, track and identify events to Woopra's HTTP Tracking API "
                    "(docs/behaviour.md).",
        epilog="Beam's standard options (--runner, --streaming, --project, --region, ...) work too; "
               "they are listed with --help-beam.")
    for title, description, flags in OPTION_GROUPS:
        group = parser.add_argument_group(title, description or None)
        for flag in flags:
            group.add_argument(flag.name, metavar=flag.metavar, help=flag.help_text())
    group.add_argument("-h", "--help", action="store_true", help="Show this help.")
    group.add_argument("--help-beam", action="store_true", help="Show Beam's standard options.")
    return parser


FLAGS = {flag.name[2:]: flag for _, _, flags in OPTION_GROUPS for flag in flags}


def number_option(opts: WoopraOptions, name: str) -> Any:
    """The value of numeric option ``name``, checked as its declaration in OPTION_GROUPS says."""
    number = FLAGS[name].number
    assert number is not None, f"--{name} is not declared as a number"
    return number.parse(f"--{name}", getattr(opts, name))


def validate_endpoint(url: str, option: str = "--woopra_endpoint") -> str:
    """An https:// URL, or http(s) to a loopback host for local testing (docs/options.md)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port such as "8_0" or 70000
    except ValueError as exc:  # also "[::1" (a bad IPv6 literal)
        raise OptionsError(f"{option} is not a valid URL ({exc}), got {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionsError(f"{option} must be an http(s) URL with a host, got {url!r}")
    if parts.query or parts.fragment:
        raise OptionsError(f"{option} must not carry a query or fragment, got {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise OptionsError(f"{option} must use https:// unless its host is loopback, got {url!r}")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
