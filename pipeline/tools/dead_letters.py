"""Dead-letter tools: ``python -m pipeline.dead_letters summarize|filter PATH...``.

``summarize`` counts dead-letter records (docs/behaviour.md#dead-letters) by reason, HTTP status and event name, lists
the most frequent errors and the time range of ``failed_at``; ``filter`` copies the records of
some reasons to a new file. PATH is a file, a glob or a directory of JSON-lines files. To replay,
run the job on the files (``--replay_reasons`` picks the reasons worth sending again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NoReturn

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from pipeline.tools.redact import redact_text
from transforms.read_events import event_files, records_from_path
from transforms.rules.dead_letters import DEAD_LETTER_REASONS, error_signature
from transforms.rules.events import is_dead_letter
from transforms.rules.outcomes import DeadLetterReason

NO_STATUS = "none"


def ranked(counts: Counter, top: int | None = None) -> list[tuple[Any, int]]:
    """Most frequent first, ties by name: the same records give the same lines, in any file order."""
    return sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:top]


class DeadLetterToolError(ValueError):
    """A bad command line or an unreadable path; the message is one line."""


@dataclass
class DeadLetterSummary:
    """Counts over a set of dead-letter records."""

    files: list[str] = field(default_factory=list)
    records: int = 0
    not_dead_letters: int = 0  # lines that are not JSON, or JSON that is not a dead-letter record
    by_reason: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    by_event: Counter[str] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (reason, error signature)
    first_failed_at: str | None = None
    last_failed_at: str | None = None

    def add(self, record: dict[str, Any]) -> None:
        """Count one dead-letter record."""
        self.records += 1
        reason = str(record.get("reason"))
        self.by_reason[reason] += 1
        status = record.get("status")
        self.by_status[str(status) if status is not None else NO_STATUS] += 1
        self.by_event[event_label(record.get("event"))] += 1
        self.errors[(reason, error_signature(str(record.get("error") or "")))] += 1
        failed_at = record.get("failed_at")
        if isinstance(failed_at, str) and failed_at:
            # ISO-8601 UTC strings of one format order as their times do.
            if self.first_failed_at is None or failed_at < self.first_failed_at:
                self.first_failed_at = failed_at
            if self.last_failed_at is None or failed_at > self.last_failed_at:
                self.last_failed_at = failed_at

    def to_dict(self, top: int, show_pii: bool = False) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "files": self.files,
            "records": self.records,
            "not_dead_letters": self.not_dead_letters,
            "by_reason": dict(ranked(self.by_reason)),
            "by_status": dict(ranked(self.by_status)),
            "by_event": dict(ranked(self.by_event)),
            "top_errors": [{"reason": reason, "error": error if show_pii else redact_text(error), "count": count}
                           for (reason, error), count in ranked(self.errors, top)],
            "failed_at": {"first": self.first_failed_at, "last": self.last_failed_at},
        }


def event_label(event: Any) -> str:
    """What a dead letter's event was: the track ``event`` name, or the call type."""
    if event is None:
        return "(no event: unparseable input)"
    if not isinstance(event, dict):
        return "(not an object)"
    call_type = event.get("type")
    if call_type == "track" and isinstance(event.get("event"), str) and event["event"].strip():
        return f"track {event['event'].strip()!r}"
    if call_type == "track":
        return "track (no event name)"
    if isinstance(call_type, str) and call_type:
        return call_type
    return "(no type)"


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files named by each PATH, local or ``gs://``: itself, a glob's matches, or a folder's event files."""
    files: list[str] = []
    for path in paths:
        try:
            matched, _ = event_files(path)
        except (BeamIOError, OSError, ValueError) as exc:
            raise DeadLetterToolError(f"cannot list {path}: {exc}") from None
        if not matched:
            raise DeadLetterToolError(f"no dead-letter files at {path}")
        files += [file for file in matched if file not in files]
    return files


def read_lines(path: str) -> Iterator[str]:
    """The non-blank lines of a dead-letter file, read as the job reads its input (``.gz`` too)."""
    try:
        for record in records_from_path(path):
            payload = record.payload
            yield payload.decode("utf-8", "replace") if isinstance(payload, bytes) else json.dumps(payload)
    except (BeamIOError, OSError) as exc:
        raise DeadLetterToolError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def decode_record(line: str) -> dict[str, Any] | None:
    """A line as a dead-letter record, or None when it is not one."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if is_dead_letter(record) else None


def summarize(files: Sequence[str]) -> DeadLetterSummary:
    """Count every dead-letter record of ``files``."""
    summary = DeadLetterSummary(files=list(files))
    for path in files:
        for line in read_lines(path):
            record = decode_record(line)
            if record is None:
                summary.not_dead_letters += 1
            else:
                summary.add(record)
    return summary


def _table(title: str, rows: Iterable[tuple[str, int]], total: int) -> list[str]:
    rows = list(rows)
    if not rows:
        return []
    width = max(len(name) for name, _ in rows)
    lines = [title]
    for name, count in rows:
        share = f"{100.0 * count / total:5.1f}%" if total else ""
        lines.append(f"  {name:<{width}}  {count:>7,}  {share}")
    return lines + [""]


def input_patterns(paths: Sequence[str]) -> str:
    """The job's ``--input`` for the tool's PATHs: a directory becomes ``DIR/*.jsonl``."""
    return ",".join(os.path.join(path, "*.jsonl") if os.path.isdir(path) else path for path in paths)


def format_summary(
    summary: DeadLetterSummary, top: int, show_pii: bool = False, paths: Sequence[str] = ()
) -> str:
    """The plain-text summary; ``paths`` (the command's PATHs) go into the replay hint."""
    files = summary.files
    where = files[0] if len(files) == 1 else f"{len(files)} files"
    lines = [f"Dead letters: {summary.records:,} record{'s' if summary.records != 1 else ''} in {where}"]
    if summary.first_failed_at:
        lines.append(f"failed_at: {summary.first_failed_at} … {summary.last_failed_at}")
    if summary.not_dead_letters:
        lines.append(f"({summary.not_dead_letters:,} lines are not dead-letter records and were not counted)")
    lines.append("")
    total = summary.records
    lines += _table("By reason", ranked(summary.by_reason), total)
    status_rows = [(name if name != NO_STATUS else "none (no HTTP answer)", count)
                   for name, count in ranked(summary.by_status)]
    lines += _table("By HTTP status", status_rows, total)
    lines += _table("By event", ranked(summary.by_event), total)
    errors = ranked(summary.errors, top)
    if errors:
        lines.append(f"Top errors (of {len(summary.errors):,} distinct)")
        reason_width = max(len(reason) for (reason, _), _ in errors)
        for (reason, error), count in errors:
            shown = error if show_pii else redact_text(error)
            lines.append(f"  {count:>7,}  {reason:<{reason_width}}  {shown}")
        lines.append("")
    replayable = [str(r) for r in DeadLetterReason if r.replayable and summary.by_reason.get(r)]
    if replayable:
        lines.append("Replay the delivery failures (once their cause is fixed) with:")
        lines.append(f"  python -m pipeline --input '{input_patterns(paths or files)}' --replay_reasons "
                     f"{','.join(replayable)} --dead_letter dead_letter_replay/ ...")
    return "\n".join(lines).rstrip() + "\n"


def filter_records(files: Sequence[str], reasons: frozenset[str], out: str) -> tuple[int, int]:
    """Copy the records of ``reasons`` to ``out`` (local: owner-only, they carry PII; or ``gs://``); (kept, seen)."""
    kept = seen = 0
    with _open_for_writing(out) as handle:
        for path in files:
            for line in read_lines(path):
                record = decode_record(line)
                if record is None:
                    continue
                seen += 1
                if record.get("reason") in reasons:
                    kept += 1
                    handle.write((line + "\n").encode("utf-8"))
    return kept, seen


def _open_for_writing(out: str) -> BinaryIO:
    if "://" in out:
        return FileSystems.create(out)
    parent = os.path.dirname(out)
    if parent:
        os.makedirs(parent, exist_ok=True)
    return os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise DeadLetterToolError(message)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """``summarize`` and ``filter`` sub-commands."""
    parser = _Parser(prog="python -m pipeline.dead_letters", allow_abbrev=False,
                     description="Summarize or filter dead-letter files.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    summarize_cmd = commands.add_parser("summarize", help="Counts by reason, status, event; top errors.")
    summarize_cmd.add_argument("paths", nargs="+", metavar="PATH", help="Files, globs or directories.")
    summarize_cmd.add_argument("--json", action="store_true", help="One JSON object instead of text.")
    summarize_cmd.add_argument("--top", default="10", help="How many distinct errors to list (default 10).")
    summarize_cmd.add_argument("--show-pii", "--show_pii", dest="show_pii", action="store_true",
                               help="Do not redact emails, IPs and cookies in error messages.")
    filter_cmd = commands.add_parser("filter", help="Copy the records of some reasons to a new file.")
    filter_cmd.add_argument("paths", nargs="+", metavar="PATH", help="Files, globs or directories.")
    filter_cmd.add_argument("--reasons", required=True, help="Comma-separated reasons to keep.")
    filter_cmd.add_argument("--out", required=True, help="The JSON-lines file to write.")
    return parser.parse_args(list(argv))


def _reasons(value: str) -> frozenset[str]:
    reasons = frozenset(r.strip() for r in value.split(",") if r.strip())
    unknown = sorted(reasons - set(DEAD_LETTER_REASONS))
    if not reasons or unknown:
        raise DeadLetterToolError(f"--reasons: {'unknown reason ' + repr(unknown[0]) if unknown else 'none given'} "
                                  f"(known: {', '.join(DEAD_LETTER_REASONS)})")
    return reasons


def run(argv: Sequence[str]) -> int:
    """Run one sub-command; 2 on a bad command line or path."""
    try:
        args = parse_arguments(argv)
        files = expand_paths(args.paths)
        if args.command == "filter":
            reasons = _reasons(args.reasons)
            kept, seen = filter_records(files, reasons, args.out)
            print(f"kept {kept:,} of {seen:,} dead-letter records ({', '.join(sorted(reasons))}) → {args.out}")
            return 0
        if not args.top.isdigit() or int(args.top) < 1:
            raise DeadLetterToolError(f"--top must be a whole number of at least 1, got {args.top!r}")
        summary = summarize(files)
    except DeadLetterToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary.to_dict(int(args.top), args.show_pii), ensure_ascii=False))
    else:
        sys.stdout.write(format_summary(summary, int(args.top), args.show_pii, args.paths))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    sys.exit(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
