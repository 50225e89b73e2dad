"""The event debugger: ``python -m pipeline.debug EVENT_FILE|-``.

Shows what the job does with each event of a file (read as the job reads it: JSON lines, ``.gz``
too, or Parquet), stage by stage, as Datafly Signal's event debugger does: the input, the parse
result, the consent decision, the identity applied (each event id once: a later copy is a
``duplicate``), the backfill's selection (``--start``/``--end``, ``--ledger``), the Woopra mapping
and the exact request; with ``--send`` it sends the request and shows Woopra's answer. Every stage
runs the job's own rules (``transforms/``) with the job's own option validation, so what the
debugger shows is what the job would do. Personal data (emails, IPs, cookies) is redacted unless
``--show-pii`` is given.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import zlib
from collections.abc import Sequence
from typing import NoReturn

from apache_beam.options.pipeline_options import PipelineOptions
from google.api_core.exceptions import GoogleAPIError

from pipeline.config import ConfigError
from pipeline.files import as_os_error
from pipeline.job_settings import JobSettings, resolve_settings
from pipeline.options import OptionsError
from pipeline.tools.debug_trace import (
    DebugOptionsError,
    EventTrace,
    send_requests,
    send_selection,
    trace_events,
)
from pipeline.tools.debug_view import format_trace, trace_record
from transforms.read_events import json_line_records, records_from_path
from transforms.rules.events import (
    RawInput,
)

__all__ = ["EventTrace", "format_trace", "read_inputs", "run", "trace_events"]  # what tests and tools use


# ----- reading ------------------------------------------------------------------------------------

def read_inputs(path: str) -> list[RawInput]:
    """The inputs of a file as the job reads them (JSON lines, ``.gz`` too, or Parquet; ``-``: stdin).

    A text input holding one JSON object or one JSON array, however it is laid out over lines,
    gives that object or each item of the array, so that an event pasted from elsewhere works.
    """
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            records = list(json_line_records(io.BytesIO(sys.stdin.read().encode("utf-8")), name))
        else:
            records = list(records_from_path(path))
    except GoogleAPIError as exc:  # a gs:// file that is missing or unreadable
        raise DebugOptionsError(f"cannot read {path}: {as_os_error(exc, path).strerror}") from None
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        # A missing file, or one that is not what its name says (bad gzip, not Parquet).
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise DebugOptionsError(f"cannot read {path}: {reason}") from None
    return _whole_document(records, name) or records


def _whole_document(records: list[RawInput], name: str) -> list[RawInput]:
    """The object, or the array's items, when the lines of a text input together are one JSON document."""
    lines = [record.payload for record in records if isinstance(record.payload, bytes)]
    if not lines or len(lines) < len(records):
        return []  # nothing read, or Parquet rows
    text = b"\n".join(lines)
    try:
        document = json.loads(text)
    except ValueError:
        return []
    if isinstance(document, dict) and len(records) > 1:  # one line is already the job's own record
        return [RawInput(text, name)]
    if isinstance(document, list):
        return [RawInput(json.dumps(item), f"{name}[{i}]") for i, item in enumerate(document)]
    return []


# ----- command line -------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise DebugOptionsError(message)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The debugger's own flags, and the job's mapping flags it passes on."""
    parser = _Parser(prog="python -m pipeline.debug", allow_abbrev=False,
                     description="Show what the job does with each event of a file, stage by stage.")
    add = parser.add_argument
    add("event_file", metavar="EVENT_FILE|-",
        help="An input file of the job (JSON lines, .gz too, or Parquet), one JSON object or array, or - for stdin.")
    for flag in ("--config", "--woopra_project", "--woopra_endpoint", "--woopra_timeout", "--consent_categories",
                 "--consent_default", "--identity_ttl_days", "--request_timeout", "--replay_reasons", "--start",
                 "--end", "--ledger"):
        add(flag, help="As for the job (python -m pipeline --help).")
    add("--send", action="store_true", help="Really send each request (once, no retry) and show the response.")
    add("--show-pii", "--show_pii", dest="show_pii", action="store_true",
        help="Show emails, IPs and cookies in full (redacted by default).")
    add("--json", action="store_true", help="One JSON object per event instead of text.")
    add("--events", metavar="N[,N...]",
        help="Show (and --send) only these events, by position in the file (1 = first; a Parquet file's row "
             "number); every event still counts for identity.")
    return parser.parse_args(list(argv))


def selected_positions(value: str | None, total: int) -> set[int] | None:
    """``--events 2,5``: the 1-based positions to show; None shows every event."""
    if value is None:
        return None
    positions: set[int] = set()
    for part in value.split(","):
        if not part.strip().isdigit() or not 1 <= int(part) <= total:
            raise DebugOptionsError(f"--events must be positions from 1 to {total}, got {part.strip()!r}")
        positions.add(int(part))
    return positions


def job_settings(args: argparse.Namespace) -> JobSettings:
    """The job's own validation of the flags it shares (``--input`` is a stand-in: nothing is read)."""
    flags = ["--input=-"]
    for name in ("config", "woopra_project", "woopra_endpoint", "woopra_timeout", "consent_categories",
                 "consent_default", "identity_ttl_days", "request_timeout", "replay_reasons", "start", "end",
                 "ledger"):
        value = getattr(args, name)
        if value is not None:
            flags.append(f"--{name}={value}")
    return resolve_settings(PipelineOptions(flags))


def run(argv: Sequence[str]) -> int:
    """Debug every event of the file; 2 on bad options, 1 when ``--send`` got no 2xx."""
    try:
        args = parse_arguments(argv)
        job = job_settings(args)
        selection = send_selection(job)
        inputs = read_inputs(args.event_file)
        shown = selected_positions(args.events, len(inputs))
    except (DebugOptionsError, OptionsError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    replay = frozenset(job.replay_reasons) if job.replay_reasons is not None else None
    every = trace_events(inputs, job.woopra, job.consent, job.identity_ttl_days, replay, selection=selection)
    traces = [t for t in every if shown is None or t.index in shown]
    if args.send:
        send_requests(traces, job.delivery.request_timeout)
    for trace in traces:
        if args.json:
            print(json.dumps(trace_record(trace, args.show_pii), ensure_ascii=False, default=str))
        else:
            print(format_trace(trace, len(every), job.woopra, job.consent, args.show_pii))
            print()
    if not traces and not args.json:
        print("no events in the file")
    failed = args.send and any(t.response is not None and not t.response.delivered for t in traces)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    try:
        code = run(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (``| head -2``): that is the end, not an error. Python's own recipe: point
        # stdout at devnull so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
