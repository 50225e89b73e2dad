"""Dead-letter records (docs/behaviour.md#dead-letters): what failed, why, and everything needed to replay it (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from transforms.rules.outcomes import DeadLetterReason

RESPONSE_BODY_LIMIT = 1024
# The tagged output every step sends its dead letters to.
DEAD_LETTERS: Final = "dead_letters"
# Every reason a dead letter can have, in the order the pipeline meets them.
DEAD_LETTER_REASONS = tuple(str(reason) for reason in DeadLetterReason)
# A URL's query (after "?") up to whitespace or a quote: it carries one event's values.
_URL_QUERY = re.compile(r"\?[^\s'\"]+")
_JSON_POSITION = re.compile(r": line \d+ column \d+ \(char \d+\)")


def error_signature(error: str) -> str:
    """An error message without its per-event details, so that identical failures count together.

    Drops URL queries (a connection error quotes the request URL, with the visitor's email and
    cookie) and JSON decoder positions.
    """
    signature = _JSON_POSITION.sub("", _URL_QUERY.sub("?…", error or "")).strip()
    return signature.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate as a \\u escape


def utc_now_iso() -> str:
    """The current time as an ISO-8601 UTC string with a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cut_utf8(text: str, limit_bytes: int) -> str:
    """``text`` cut to at most ``limit_bytes`` of UTF-8, never inside a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit_bytes:
        return text
    return encoded[:limit_bytes].decode("utf-8", "ignore")


def step_failure_error(step: str, exc: BaseException) -> str:
    """The ``error`` of an event that made a step of the job raise: the step and the exception."""
    return f"{step} failed on this event: {type(exc).__name__}: {exc}"[:1000]


@dataclass(frozen=True)
class DeadLetter:
    """One event the pipeline could not deliver, in the shape of docs/behaviour.md#dead-letters."""

    reason: str  # invalid_json | invalid_event | too_large | rejected | retries_exhausted
    error: str
    event: Mapping[str, Any] | None
    raw: str | None = None
    status: int | None = None
    response_body: str | None = None
    attempts: int = 0
    request: Mapping[str, Any] | None = None
    attributes: Mapping[str, str] | None = None
    failed_at: str = ""
    raw_base64: str | None = None  # the exact input bytes, only when they were not UTF-8 text

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the dead-letter output."""
        record: dict[str, Any] = {
            "reason": self.reason,
            "error": self.error,
            "status": self.status,
            "response_body": cut_utf8(self.response_body or "", RESPONSE_BODY_LIMIT) or None,
            "attempts": self.attempts,
            "failed_at": self.failed_at or utc_now_iso(),
            "request": dict(self.request) if self.request is not None else None,
            "event": self.event,
            "raw": self.raw,
        }
        if self.raw_base64 is not None:
            record["raw_base64"] = self.raw_base64
        if self.attributes:
            record["attributes"] = dict(self.attributes)
        return record

    def to_json(self) -> str:
        """One JSON line."""
        return to_json_line(self.to_dict())


def to_json_line(record: Mapping[str, Any]) -> str:
    """Compact JSON of a record, UTF-8 kept as is; never raises.

    Text that UTF-8 cannot hold (a lone surrogate) is written as JSON escapes, which read back
    as the same value. A value JSON cannot hold at all leaves a note in ``error`` and the
    record's ``raw`` (or ``event``) as text, so the line is still one record.
    """
    try:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, TypeError, RecursionError) as exc:
        return _fallback_line(record, exc)
    if not line.isascii():
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=str)
    return line


def _fallback_line(record: Mapping[str, Any], exc: BaseException) -> str:
    safe: dict[str, Any] = {}
    for key, value in record.items():
        try:
            json.dumps(value, ensure_ascii=True, default=str)
            safe[key] = value
        except (ValueError, TypeError, RecursionError):
            safe[key] = None
    note = f"(this record's {', '.join(k for k, v in safe.items() if v is None and record.get(k) is not None)} " \
           f"could not be written as JSON: {type(exc).__name__})"
    safe["error"] = f"{safe.get('error') or ''} {note}".strip()
    return json.dumps(safe, ensure_ascii=True, separators=(",", ":"), default=str)
