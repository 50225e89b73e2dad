"""``--sink import`` (docs/backfill.md#the-import-sink): its options checked and its credentials
read, before anything is read. The secret is never part of a message."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.dataflow_rules import worker_processes
from pipeline.files import read_text
from pipeline.options import OptionsError, WoopraOptions, number_option, validate_endpoint
from transforms.delivery.call_budget import CallLimit, parse_limits
from transforms.delivery.import_sender import ImportCredentials, ImportDelivery
from transforms.delivery.retry import RetryPolicy
from transforms.rules.import_visits import DEFAULT_IMPORT_ENDPOINT, DEFAULT_MAX_BYTES, DEFAULT_MAX_VISITS


@dataclass(frozen=True)
class ImportSettings:
    """The import sink: how visits are packed and sent, and the credentials (None in a dry run)."""

    delivery: ImportDelivery
    credentials: ImportCredentials | None
    max_bytes: int = DEFAULT_MAX_BYTES
    max_visits: int = DEFAULT_MAX_VISITS


def import_settings(opts: WoopraOptions, options: PipelineOptions, project: str,
                     streaming: bool) -> ImportSettings | None:
    """``--sink import``: its options checked, the credentials read (unless a dry run), before anything is read."""
    sink = str(opts.sink or "track").strip().lower()
    if sink not in ("track", "import"):
        raise OptionsError(f"--sink must be track or import, got {opts.sink!r}")
    if sink == "track":
        return None
    if streaming:
        raise OptionsError("--sink import is for batch backfills from files; leave out --streaming")
    # Each worker process keeps its own budget: each gets an equal share of the job's limits.
    processes = (number_option(opts, "rate_limit_processes") if opts.rate_limit_processes
                 else worker_processes(options))
    try:
        budget = parse_limits(opts.import_budget or "")
    except ValueError as exc:
        raise OptionsError(f"--import_budget: {exc}") from None
    limits = tuple(CallLimit(max(1, limit.calls // processes), limit.seconds) for limit in budget)
    delivery = ImportDelivery(
        endpoint=validate_endpoint(opts.woopra_import_endpoint or DEFAULT_IMPORT_ENDPOINT, "--woopra_import_endpoint"),
        project=project, limits=limits, max_in_flight=number_option(opts, "import_max_in_flight"),
        retry=RetryPolicy(max_attempts=number_option(opts, "max_attempts"),
                          max_retry_seconds=number_option(opts, "max_retry_seconds")))
    credentials = None if opts.dry_run_output else import_credentials(opts.woopra_credentials, os.environ)
    return ImportSettings(delivery, credentials, number_option(opts, "import_max_bytes"),
                          number_option(opts, "import_max_visits"))


def import_credentials(path: str | None, environ: Any) -> ImportCredentials:
    """The App ID and Secret Key from ``--woopra_credentials`` or the environment; a one-line error naming
    what is missing (never the secret's value)."""
    if path:
        try:
            document = json.loads(read_text(path))
        except OSError as exc:
            raise OptionsError(f"--woopra_credentials: cannot read {path}: {exc.strerror or exc}") from None
        except ValueError:
            raise OptionsError(f"--woopra_credentials: {path} is not JSON with app_id and secret_key") from None
        values = document if isinstance(document, dict) else {}
        absent = [key for key in ("app_id", "secret_key") if not isinstance(values.get(key), str) or not values[key]]
        if absent:
            raise OptionsError(f"--woopra_credentials: {path} has no {' or '.join(absent)}")
        return ImportCredentials(values["app_id"], values["secret_key"])
    app_id, secret = environ.get("WOOPRA_APP_ID", ""), environ.get("WOOPRA_SECRET_KEY", "")
    if not app_id or not secret:
        missing = " and ".join(name for name, value in (("WOOPRA_APP_ID", app_id), ("WOOPRA_SECRET_KEY", secret))
                               if not value)
        raise OptionsError(f"--sink import needs Woopra's Access Keys: set {missing}, or give --woopra_credentials "
                           "FILE (JSON with app_id and secret_key)")
    return ImportCredentials(app_id, secret)
