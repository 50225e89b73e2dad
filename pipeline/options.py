"""Command-line options (docs/options.md), runner configs, and their validation into a ``JobSettings``.

Numbers are declared as strings and converted here, so that a bad value gets one line naming
the option instead of argparse's usage dump.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import io
import ipaddress
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.config import IntegrationConfig, load_config, yaml_problem
from pipeline.files import read_text
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

log = logging.getLogger("pipeline.options")
RUNNER_CONFIG_DIR = Path(__file__).resolve().parent.parent / "runner_configs"
# Beam's DirectRunner first tries to download the Prism runner, which fails without internet
# and is slow with it; these two local runners need nothing from outside.
DEFAULT_BATCH_RUNNER = "FnApiRunner"
DEFAULT_STREAMING_RUNNER = "BundleBasedDirectRunner"


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
        Flag("--ledger", "FOLDER", "Folder (local or gs://) recording each event Woopra accepted; a rerun with the "
                           "same folder skips them, counted skipped_ledger, and sends the others again."),
        Flag("--dedup_window", "SECONDS", "Streaming: drop copies of an event id seen this many seconds before "
                                  "(processing time), counted duplicate. Batch drops every later copy.", "600",
             Number(float, 0, 7 * 86_400)),
        Flag("--identity_join", "auto|side_input|shuffle", "How calls meet their visitor's identity timeline in "
                                                       "batch: side_input (every process holds all timelines, "
                                                       "fastest locally) or shuffle (memory independent of the "
                                                       "number of visitors). auto: shuffle on Dataflow and "
                                                       "portable runners, else side_input.", "auto"),
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
        Flag("--rate_limit_processes", "N", "Worker processes sharing --rate_limit, each an equal share. Default: "
                                       "the local runner's process count; on Dataflow --num_workers × vCPUs of "
                                       "the fixed pool Dataflow needs without --rate_limiter_address.",
             number=Number(int, 1, 100_000)),
        Flag("--delivery_process", "on|off", "on: send from a child process, on a core of its own; off: from the "
                                   "worker itself. Default: on, but off on Dataflow (one SDK process per vCPU "
                                   "already uses every core)."),
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
    # Names this run's output files, so that no run replaces another's (transforms/file_output.py).
    run_id: str = field(default_factory=new_run_id)


def _flag_name(key: str) -> str:
    return "--" + key.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class RunnerConfigEntry:
    """One ``key: value`` of a runner config file, as the flags it stands for, with its line."""

    flags: tuple[str, ...]
    line: int


def _runner_config_file(path: str) -> str:
    """The file a runner config names: a path (local or ``gs://``), or a file of runner_configs/ by its name."""
    if "://" not in path and not os.path.exists(path) and (RUNNER_CONFIG_DIR / path).exists():
        return str(RUNNER_CONFIG_DIR / path)
    return path


def runner_config_entries(path: str) -> list[RunnerConfigEntry]:
    """The flags of each ``key: value`` of a runner config file (``key: value`` → ``--key=value``)."""
    try:
        text = read_text(_runner_config_file(path))
    except OSError as exc:
        raise OptionsError(f"--runner_config: cannot read {path}: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
        root = yaml.compose(text)  # the same document as nodes, for line numbers
    except yaml.YAMLError as exc:
        raise OptionsError(f"--runner_config: {path} is not valid YAML, {yaml_problem(exc)}") from None
    if document is None:
        return []
    if not isinstance(document, dict) or not isinstance(root, yaml.MappingNode):
        raise OptionsError(f"--runner_config: {path} must be a mapping of option: value")
    lines = {key.value: key.start_mark.line + 1 for key, _ in root.value if isinstance(key, yaml.ScalarNode)}
    entries: list[RunnerConfigEntry] = []
    for key, value in document.items():
        name = _flag_name(str(key))
        if name == "--runner_config":
            raise OptionsError(f"--runner_config: {path} cannot name another runner_config")
        if value is None or value is False:
            continue
        if value is True:
            flags = [name]
        elif isinstance(value, list):
            flags = [f"{name}={item}" for item in value]
        else:
            flags = [f"{name}={value}"]
        entries.append(RunnerConfigEntry(tuple(flags), lines.get(str(key), 0)))
    return entries


def runner_config_flags(path: str) -> list[str]:
    """The flags a runner config YAML file stands for, in file order."""
    return [flag for entry in runner_config_entries(path) for flag in entry.flags]


def runner_config_path(argv: Sequence[str]) -> str | None:
    """The file named by ``--runner_config`` on the command line, if any."""
    for i, arg in enumerate(argv):
        if arg == "--runner_config":
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise OptionsError("--runner_config needs a file name, e.g. --runner_config runner_configs/local.yaml")
            return argv[i + 1]
        if arg.startswith("--runner_config="):
            return arg.split("=", 1)[1]
    return None


def expand_runner_config(argv: Sequence[str]) -> list[str]:
    """Put the runner config's flags before the command line's, so command-line flags win."""
    path = runner_config_path(argv)
    return (runner_config_flags(path) if path else []) + list(argv)


def check_runner_config_flags(path: str) -> None:
    """Refuse a runner config key that looks like a typo of the job's own options, naming the file and
    its line; warn of other unknown keys, which go to the runner as they are (check_unknown_flags)."""
    for entry in runner_config_entries(path):
        for flag in unknown_flags(normalize_streaming(take_dry_run(list(entry.flags)))):
            meant = job_option_meant(flag)
            if meant:
                raise OptionsError(f"--runner_config {path}, line {entry.line}: unknown option "
                                   f"'{flag.removeprefix('--')}', did you mean '{meant.removeprefix('--')}'? "
                                   "(see python -m pipeline --help)")
            log.warning("--runner_config %s, line %d: %s is not an option of this job or of Beam; it is passed on "
                        "to the runner as it is", path, entry.line, flag)


def job_option_meant(flag: str) -> str | None:
    """The job's own option that an unknown ``flag`` looks like a typo of, if any.

    A dashed spelling (``--max-in-flight``), an abbreviation (``--max_in``) or a near miss
    (``--max_in_flght``) of one of the job's options; None for anything else.
    """
    name = flag.removeprefix("--").replace("-", "_")
    if not name:
        return None
    if name in FLAGS:
        return FLAGS[name].name
    abbreviated = [key for key in FLAGS if key.startswith(name)]
    if abbreviated:
        return FLAGS[abbreviated[0]].name
    close = difflib.get_close_matches(name, list(FLAGS), n=1, cutoff=0.8)
    return FLAGS[close[0]].name if close else None


def check_unknown_flags(unknown: Sequence[str]) -> None:
    """Refuse the first unknown flag that looks like a typo of the job's own options; warn of the others.

    Beam passes options it does not know on to the runner, with a warning (Dataflow's launcher
    adds some, e.g. ``--launcher_machine_type``): so does the job, except for what is most likely
    a mistyped option of its own, which would otherwise be silently left at its default.
    """
    for flag in unknown:
        meant = job_option_meant(flag)
        if meant:
            raise OptionsError(f"unknown option {flag}, did you mean {meant}? python -m pipeline --help lists "
                               "the options")
    for flag in unknown:
        log.warning("%s is not an option of this job or of Beam; it is passed on to the runner as it is", flag)


def take_dry_run(argv: Sequence[str]) -> list[str]:
    """Rewrite the ``--dry_run PATH`` alias as ``--dry_run_output=PATH`` before Beam parses.

    Beam's own TestOptions declares ``--dry_run`` (it stops Dataflow from submitting the job), so
    the alias must never reach Beam; ``--dry_run=true`` / ``--dry_run=false`` (no path) stay Beam's:
    they build a Dataflow job without submitting it.
    """
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        path: str | None = None
        if arg == DRY_RUN_ALIAS:
            path = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""
            i += 1
        elif arg.startswith(DRY_RUN_ALIAS + "="):
            path = arg.split("=", 1)[1]
            if path.lower() in ("true", "false"):
                path = None  # Beam's TestOptions.dry_run
        if path is None:
            rest.append(arg)
        elif not path:
            raise OptionsError("--dry_run needs a path prefix for the request files, e.g. --dry_run out/requests/")
        else:
            rest.append(f"--dry_run_output={path}")
        i += 1
    return rest


def normalize_streaming(argv: Sequence[str]) -> list[str]:
    """Accept ``--streaming=true|false`` and ``--streaming true|false`` (Beam's flag takes no value);
    the last one given wins, so the command line overrides a runner config's ``streaming``."""
    rest: list[str] = []
    streaming: bool | None = None
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        value: str | None = None
        if arg.startswith("--streaming="):
            value = arg.split("=", 1)[1]
        elif arg == "--streaming":
            value = "true"
            if i + 1 < len(args) and args[i + 1].lower() in ("true", "false"):
                value = args[i + 1]
                i += 1
        if value is None:
            rest.append(arg)
        elif value.lower() in ("true", "false"):
            streaming = value.lower() == "true"
        else:
            raise OptionsError(f"--streaming takes no value, or true or false; got {value!r}")
        i += 1
    return rest + ["--streaming"] if streaming else rest


def unknown_flags(argv: Sequence[str]) -> list[str]:
    """Flags no registered PipelineOptions class knows (typos would otherwise be ignored).

    Beam keeps unknown flags only when asked (``retain_unknown_options``); an option whose value
    differs from the strict parse, or that only the lenient parse has, came from an unknown flag
    (this also catches ``--max-in-flight``, which argparse would give the dest of a known option).
    """
    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_log.level
    beam_log.setLevel(logging.ERROR)  # the strict parse warns "Discarding unparseable args"
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):  # argparse prints its whole usage before exiting
            options = PipelineOptions(list(argv))
            strict = options.get_all_options()
            lenient = options.get_all_options(retain_unknown_options=True)
    except SystemExit:
        raise OptionsError(_argparse_reason(usage.getvalue())) from None
    finally:
        beam_log.setLevel(level)
    unknown_dests = {key for key, value in lenient.items() if key not in strict or strict[key] != value}
    flags: list[str] = []
    for arg in argv:
        name = arg.split("=", 1)[0]
        dest = name.removeprefix("--").replace("-", "_")
        if name.startswith("--") and dest in unknown_dests and (dest not in strict or "-" in name[2:]):
            flags.append(name)
    return list(dict.fromkeys(flags))


def _argparse_reason(usage: str) -> str:
    """One line from argparse's usage dump: ``argument --input: expected one argument`` → ``--input needs a value``."""
    last = (usage.strip().splitlines() or ["bad command line"])[-1]
    reason = last.split("error: ", 1)[-1]
    if reason.startswith("argument ") and "expected one argument" in reason:
        flag = reason.removeprefix("argument ").split(":", 1)[0].split("/")[0]
        return f"{flag} needs a value"
    return reason.removeprefix("argument ")


def check_runner(argv: Sequence[str]) -> None:
    """Refuse a runner name Beam would not find (``--runner DirectRuner``), listing the known ones."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = PipelineOptions(list(argv)).view_as(StandardOptions).runner
    if not runner or not isinstance(runner, str):
        return
    known = [*StandardOptions.KNOWN_RUNNER_NAMES]
    lowered = {name.lower() for name in known}
    if runner.lower() in lowered or runner.lower() + "runner" in lowered:
        return
    if "." in runner:
        module, _, name = runner.rpartition(".")
        try:
            if hasattr(importlib.import_module(module), name):
                return
        except ImportError:
            pass
        raise OptionsError(f"--runner {runner}: no such runner class (give a runner name, e.g. FnApiRunner)")
    close = difflib.get_close_matches(runner, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise OptionsError(f"--runner {runner} is not a Beam runner; {hint}known: {', '.join(known)}")


def with_default_runner(argv: Sequence[str]) -> list[str]:
    """Pin a local runner that works offline when the command line names none."""
    argv = list(argv)
    if any(a == "--runner" or a.startswith("--runner=") for a in argv):
        return argv
    streaming = "--streaming" in argv
    return argv + [f"--runner={DEFAULT_STREAMING_RUNNER if streaming else DEFAULT_BATCH_RUNNER}"]


def validate_endpoint(url: str) -> str:
    """An https:// URL, or http(s) to a loopback host for local testing (docs/options.md)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port such as "8_0" or 70000
    except ValueError as exc:  # also "[::1" (a bad IPv6 literal)
        raise OptionsError(f"--woopra_endpoint is not a valid URL ({exc}), got {url!r}") from None
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
    )


FLAGS = {flag.name[2:]: flag for _, _, flags in OPTION_GROUPS for flag in flags}


def number_option(opts: WoopraOptions, name: str) -> Any:
    """The value of numeric option ``name``, checked as its declaration in OPTION_GROUPS says."""
    number = FLAGS[name].number
    assert number is not None, f"--{name} is not declared as a number"
    return number.parse(f"--{name}", getattr(opts, name))


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
